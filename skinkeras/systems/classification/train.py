"""Training a classifier (task "classification") with the fit engine."""

from __future__ import annotations

import dataclasses
import logging

log = logging.getLogger(__name__)


def train(config, run_dir, *, resume: bool = False, verbose="auto", classifier_overrides: dict | None = None,
          table=None) -> dict:
    """Trains `config` into `run_dir` (or continues the run there with `resume=True`).

    `classifier_overrides` replaces `ClassifierConfig` fields the experiment config does not
    carry (the two-stage members' `hidden_units`); `table` is the dataset as a `SampleTable`
    instead of `data.dataset` at `data.root` (a composite run hands its members their images).
    A resumed run reloads its model and its split.
    """
    from skinkeras.engine.fit import build_or_resume, fit, start_run, write_summary
    from skinkeras.engine.run_data import check_images_once
    from skinkeras.engine.runtime import make_strategy, resolve_precision
    from skinkeras.systems.classification.data import make_dataset, prepare_data
    from skinkeras.systems.classification.model import build_model
    from skinkeras.training.objectives import (
        class_counts,
        classification_loss,
        classification_metrics,
        optimizer,
        selection_callbacks,
    )

    from skinkeras.engine.fit import check_training_config
    from skinkeras.models.pretrained import resolve_weights

    check_decision_rule(config)
    check_training_config(None if resume else config)
    weights = None
    if not resume:  # a resumed run's stored config holds the weights it started from
        config, weights = resolve_weights(config)
    config, run, state = start_run(config, run_dir, resume=resume)
    data = prepare_data(config, run, table=table)
    data = dataclasses.replace(data, table=check_images_once(data.table, run))
    sizes = data.sizes()
    log.info("%s: %s images (train %d, val %d, test %d), classes %s", config.data.dataset,
             len(data.table), sizes["train"], sizes["val"], sizes["test"], ", ".join(data.class_names))

    precision = resolve_precision(config.train.precision)
    strategy = make_strategy(config.train.strategy)
    log.info("precision %s, %d replica(s), global batch %d", precision,
             strategy.num_replicas_in_sync, config.data.batch_size)

    def build():
        model = build_model(config, data, precision, **(classifier_overrides or {}))
        counts = class_counts(data.part("train"), len(data.class_names))
        model.compile(optimizer=optimizer(config.train, precision),
                      loss=classification_loss(config.train, counts, data.class_names),
                      metrics=classification_metrics(len(data.class_names)))
        return model

    model = build_or_resume(run, state, build, strategy=strategy)
    t = config.train
    batch = config.data.batch_size
    # Explicit step counts: the datasets' cardinality is unknown to Keras (filtered, batched files).
    steps = t.steps_per_epoch or max(1, sizes["train"] // batch)
    result = fit(
        model, run, train_config=t, state=state,
        train_data=lambda epoch: make_dataset(config, data, "train", training=True, epoch=epoch),
        steps=steps, val_data=make_dataset(config, data, "val", training=False), val_steps=-(-sizes["val"] // batch),
        images_per_epoch=steps * batch, extra_callbacks=selection_callbacks(t), verbose=verbose)
    rule = fit_decision_rule(config, run, data)
    return write_summary(config, run, result, monitor=t.monitor, precision=precision,
                         replicas=strategy.num_replicas_in_sync, split_sizes=sizes,
                         decision_rule_tau=None if rule is None else rule.tau,
                         **({} if weights is None else {"backbone_weights": weights.to_json()}))


DECISION_RULES = ("prior", "none")


def check_decision_rule(config) -> str:
    """`train.decision_rule`, refused before training rather than after it."""
    from skinkeras.errors import SkinkerasError

    choice = getattr(config.train, "decision_rule", "prior")
    if choice not in DECISION_RULES:
        raise SkinkerasError(f"train.decision_rule must be one of {', '.join(DECISION_RULES)}. Received: {choice!r}")
    return choice


def fit_decision_rule(config, run, data):
    """Fits the prior adjustment (`skinkeras.evaluation.decision_rule`) on the best model's val
    predictions and writes decision_rule.json; None (no file) with `train.decision_rule = none`.

    Written before run.json, so a finished run always holds the rule it was trained with. The prior
    is the train split's class frequencies: what the softmax learned to expect.
    """
    from skinkeras.engine.run_directory import load_run_model
    from skinkeras.evaluation.decision_rule import DecisionRule, class_prior
    from skinkeras.systems.classification.evaluate import predict_table

    choice = check_decision_rule(config)
    if run.decision_rule.exists():
        run.decision_rule.unlink()  # a resumed run refits on its new best model
    if choice == "none" or len(data.part("val")) == 0 or not run.best_model.exists():
        return None
    num_classes = len(data.class_names)
    prior = class_prior(data.part("train").samples["label_index"], num_classes)
    labels, probs, _ = predict_table(load_run_model(run), data.part("val"), run.read_preprocessing(),
                                     batch_size=config.data.batch_size, color_constancy=config.data.color_constancy)
    rule = DecisionRule.fit(labels, probs, prior)
    rule.write(run.decision_rule)
    log.info("decision rule: %s", rule.describe())
    return rule
