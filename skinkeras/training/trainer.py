"""The training engine behind `skinkeras train`: config -> data -> model -> fit -> run directory.

Run directory layout (everything a later `evaluate`, `export` or `--resume` needs):

    config.json              the resolved experiment config
    split.csv                image_id, lesion_id, label, split (lesion-grouped, class-stratified)
    preprocessing.json       class names, image size, metadata encoding (fitted on the train split)
    skipped.json             images left out (missing, unreadable, unknown label), by image id
    checkpoints/last.keras   model + optimizer after the last finished epoch
    checkpoints/state.json   epochs done, callback states, history (written last, atomically)
    best.keras               the model at the best validation score
    history.csv, logs/       per-epoch metrics (CSV) and TensorBoard logs
    run.json                 summary: epochs, best epoch, time, images/s

Resuming replays exactly: each epoch is one `fit` call on a dataset whose order and augmentation
are a function of (seed, epoch) alone, and the schedule / early-stopping / checkpoint states are
restored from state.json, so a killed run resumed with `--resume` ends where an uninterrupted run
would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path


from skinkeras.errors import SkinkerasError
from skinkeras.experiments.config import ExperimentConfig, load_config, save_config

log = logging.getLogger(__name__)

SPLIT_FILE = "split.csv"
PREPROCESSING_FILE = "preprocessing.json"


@dataclasses.dataclass
class RunData:
    """The dataset of a run, split, with what the model needs to know about it."""

    table: object  # SampleTable with its `split` column filled
    class_names: tuple[str, ...]
    metadata: object | None  # MetadataEncoding or None

    def part(self, name: str):
        return self.table.subset(self.table.samples["split"] == name)


def read_split(run_dir) -> dict[str, str] | None:
    """The run's stored split as image_id -> "train" / "val" / "test", or None without split.csv."""
    import pandas as pd

    path = Path(run_dir) / SPLIT_FILE
    if not path.exists():
        return None
    stored = pd.read_csv(path, dtype=str, keep_default_na=False)
    return dict(zip(stored["image_id"], stored["split"]))


def load_split_table(config: ExperimentConfig, run_dir: Path):
    """The run's dataset with a `split` column: the run's split.csv when it has one, else a new
    lesion-grouped split, written to split.csv. Dataset problems are logged and written to
    skipped.json. Shared by every task's trainer."""
    from skinkeras.data.registry import load_dataset
    from skinkeras.data.splits import train_val_test_split, with_split_column

    if not config.data.root:
        raise SkinkerasError("no dataset root given (--data-root DIR or --set data.root=DIR)")
    table = load_dataset(config.data.dataset, config.data.root)
    if table.problems:
        (run_dir / "skipped.json").write_text(json.dumps(
            [dataclasses.asdict(p) for p in table.problems], indent=2) + "\n")
        excluded = [p for p in table.problems if p.excludes]
        log.warning("%d problems in the dataset (%d images left out); see %s", len(table.problems),
                    len(excluded), run_dir / "skipped.json")
    by_id = read_split(run_dir)
    if by_id is not None:
        samples = table.samples.copy()
        samples["split"] = samples["image_id"].map(by_id).fillna("")
        table = dataclasses.replace(table, samples=samples)
    else:
        split = train_val_test_split(table, config.data.split_fractions, seed=config.data.split_seed)
        table = with_split_column(table, split)
        table.samples[["image_id", "lesion_id", "label", "split"]].to_csv(run_dir / SPLIT_FILE, index=False)
    return table


def prepare_data(config: ExperimentConfig, run_dir: Path) -> RunData:
    """Loads the dataset, splits it by lesion (or reuses the run's split.csv) and fits the metadata
    encoding on the training part. Writes split.csv, preprocessing.json and skipped.json."""
    from skinkeras.data.metadata import MetadataEncoding

    table = load_split_table(config, run_dir)
    if config.data.limit:
        # Smoke runs: a class-stratified sample of the training part only; val/test stay whole.
        samples = table.samples
        train = samples[samples["split"] == "train"]
        keep = train.groupby("label", group_keys=False).apply(
            lambda g: g.sample(n=max(1, round(len(g) * config.data.limit / len(train))),
                               random_state=config.train.seed), include_groups=False).index
        drop = train.index.difference(keep)
        samples = samples.drop(index=drop).reset_index(drop=True)
        table = dataclasses.replace(table, samples=samples)
    metadata = None
    if config.data.use_metadata and config.model.metadata_branch != "none":
        metadata = MetadataEncoding.fit(table.samples[table.samples["split"] == "train"])
    (run_dir / PREPROCESSING_FILE).write_text(json.dumps({
        "dataset": config.data.dataset,
        "class_names": list(table.class_names),
        "image_size": config.data.image_size,
        "metadata": metadata.to_config() if metadata else None,
        "metadata_features": list(metadata.feature_names) if metadata else None,
        "input": "raw RGB 0..255, scaled inside the model",
    }, indent=2) + "\n")
    return RunData(table=table, class_names=tuple(table.class_names), metadata=metadata)


def classifier_config(config: ExperimentConfig, data: RunData, dtype: str | None):
    from skinkeras.models.classifier import ClassifierConfig

    branch = config.model.metadata_branch
    return ClassifierConfig(
        backbone=config.model.backbone,
        head=config.model.head,
        num_classes=len(data.class_names),
        image_size=config.data.image_size,
        metadata=None if data.metadata is None else branch,
        metadata_features=data.metadata.num_features if data.metadata else 20,
        weights=config.model.weights or None,
        attention_heads=config.model.attention_heads,
        attention_gamma_init=config.model.attention_gamma_init,
        attention_dropout=config.model.dropout,
        dtype=dtype,
    )


def make_dataset(config: ExperimentConfig, data: RunData, part: str, *, training: bool, epoch: int = 0):
    from skinkeras.data.pipeline import make_classification_dataset

    table = data.part(part)
    if len(table) == 0:
        raise SkinkerasError(f"the {part} split is empty: {len(data.table)} images in all")
    return make_classification_dataset(
        table,
        image_size=config.data.image_size,
        batch_size=config.data.batch_size,
        training=training,
        metadata=data.metadata,
        augment=config.data.augment,
        color_constancy=config.data.color_constancy,
        balanced_sampling=config.data.balanced_sampling,
        cache=config.data.cache or None,
        # One seed per epoch: the epoch's order and augmentation depend on (seed, epoch) only.
        seed=config.train.seed * 100_003 + epoch * 7_919,
        metadata_missing_rate=config.data.metadata_missing_p,
        check_images=False,  # done once, up front, by `check_images_once`
    )


def check_images_once(data: RunData, run_dir: Path) -> RunData:
    """Decodes every image once; unreadable ones are left out, logged and recorded in skipped.json."""
    from skinkeras.data.images import check_images

    samples = data.table.samples
    problems = check_images(samples["image_path"].tolist(), samples["image_id"].tolist())
    bad = {p.image_id for p in problems if p.excludes}
    if not bad:
        return data
    log.warning("skipping %d unreadable images: %s", len(bad), ", ".join(sorted(bad)[:20]))
    skipped_path = run_dir / "skipped.json"
    previous = json.loads(skipped_path.read_text()) if skipped_path.exists() else []
    skipped_path.write_text(json.dumps(previous + [dataclasses.asdict(p) for p in problems], indent=2) + "\n")
    table = data.table.subset(~samples["image_id"].isin(bad))
    return dataclasses.replace(data, table=table)


def set_batchnorm_momentum(model, config: ExperimentConfig) -> None:
    """Applies `model.bn_momentum` (auto: 0.9 for random init) to every BatchNormalization layer."""
    import keras

    momentum = config.model.bn_momentum
    if momentum < 0:
        if config.model.weights:
            return
        momentum = 0.9
    if not 0 < momentum < 1:
        raise SkinkerasError(f"model.bn_momentum must be in (0, 1) or -1 (auto). Received: {momentum}")
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def _optimizer(config: ExperimentConfig):
    import keras

    t = config.train
    if t.optimizer == "adam":
        if t.weight_decay:
            return keras.optimizers.AdamW(t.learning_rate, weight_decay=t.weight_decay, epsilon=t.adam_epsilon)
        return keras.optimizers.Adam(t.learning_rate, epsilon=t.adam_epsilon)
    if t.optimizer == "sgd":
        return keras.optimizers.SGD(t.learning_rate, momentum=t.momentum, nesterov=True,
                                    weight_decay=t.weight_decay or None)
    raise SkinkerasError(f"train.optimizer must be adam or sgd. Received: {t.optimizer!r}")


def _loss(config: ExperimentConfig, data: RunData):
    from skinkeras.training.class_weights import class_weights
    from skinkeras.training.losses import build_loss

    if config.train.loss not in ("cce", "focal"):
        raise SkinkerasError(f"train.loss must be cce or focal. Received: {config.train.loss!r}")
    train = data.part("train").samples
    counts = [int((train["label_index"] == k).sum()) for k in range(len(data.class_names))]
    weights = class_weights(counts, mode=config.train.class_weights)
    log.info("class weights (%s): %s", config.train.class_weights,
             ", ".join(f"{n} {w:.2f}" for n, w in zip(data.class_names, weights)))
    return build_loss(config.train.loss, class_weights=list(map(float, weights)),
                      focal_gamma=config.train.focal_gamma)


def _metrics(num_classes: int):
    import keras

    return [
        keras.metrics.CategoricalAccuracy(name="accuracy"),
        # multi_label=True averages the per-class one-vs-rest AUCs: the macro AUC of the papers.
        keras.metrics.AUC(multi_label=True, num_labels=num_classes, name="auc"),
    ]


def train(config: ExperimentConfig, run_dir, *, resume: bool = False, verbose="auto",
          classifier_overrides: dict | None = None) -> dict:
    """Trains `config` into `run_dir` (or continues the run there with `resume=True`).

    `classifier_overrides` replaces `ClassifierConfig` fields the experiment config does not
    carry (the two-stage pipeline's `hidden_units=128`); a resumed run reloads its model instead.
    """
    import keras

    from skinkeras.saving import load_model
    from skinkeras.training import callbacks as cb
    from skinkeras.training.runtime import make_strategy, resolve_precision

    run_dir = Path(run_dir)
    state = cb.load_run_state(run_dir) if resume else None
    if resume:
        if state is None:
            raise SkinkerasError(f"nothing to resume in {run_dir}: it has no checkpoints/state.json")
        config = load_config(run_dir / "config.json")
    elif (run_dir / "checkpoints" / "state.json").exists():
        raise SkinkerasError(f"{run_dir} already holds a run: continue it with --resume or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.json")
    keras.utils.set_random_seed(config.train.seed)

    data = check_images_once(prepare_data(config, run_dir), run_dir)
    sizes = {name: int((data.table.samples["split"] == name).sum()) for name in ("train", "val", "test")}
    log.info("%s: %s images (train %d, val %d, test %d), classes %s", config.data.dataset,
             len(data.table), sizes["train"], sizes["val"], sizes["test"], ", ".join(data.class_names))

    precision = resolve_precision(config.train.precision)
    strategy = make_strategy(config.train.strategy)
    log.info("precision %s, %d replica(s), global batch %d", precision,
             strategy.num_replicas_in_sync, config.data.batch_size)
    with strategy.scope():
        if state is not None:
            model = load_model(run_dir / "checkpoints" / "last.keras")
        else:
            from skinkeras.models.classifier import build_classifier

            model = build_classifier(dataclasses.replace(
                classifier_config(config, data, precision), **(classifier_overrides or {})))
            set_batchnorm_momentum(model, config)
            model.compile(optimizer=_optimizer(config), loss=_loss(config, data),
                          metrics=_metrics(len(data.class_names)))

    t = config.train
    stateful, callbacks = run_callbacks(config, run_dir, state, monitor=t.monitor)

    val = make_dataset(config, data, "val", training=False)
    start_epoch = (state or {}).get("epochs_done", 0)
    if state is not None:
        log.info("resuming after epoch %d of %d", start_epoch, t.epochs)
    # Explicit step counts: the datasets' cardinality is unknown to Keras (filtered, batched files).
    steps = t.steps_per_epoch or max(1, sizes["train"] // config.data.batch_size)
    val_steps = -(-sizes["val"] // config.data.batch_size)
    started = time.monotonic()
    images_seen = 0
    for epoch in range(start_epoch, t.epochs):
        if _stop_requested(stateful):
            break
        train_ds = make_dataset(config, data, "train", training=True, epoch=epoch)
        _reseed_model(model, t.seed, epoch)
        if t.steps_per_epoch:
            train_ds = train_ds.repeat()
        # One fit call per epoch (on that epoch's dataset); epochs=t.epochs keeps "Epoch 3/30" right.
        model.fit(train_ds, validation_data=val, epochs=t.epochs, initial_epoch=epoch,
                  steps_per_epoch=steps, validation_steps=val_steps, shuffle=False,
                  callbacks=callbacks + [_end_after_one_epoch_callback()], verbose=verbose)
        images_seen += steps * config.data.batch_size
    summary = run_summary(config, run_dir, monitor=t.monitor, elapsed=time.monotonic() - started,
                          images_seen=images_seen, precision=precision,
                          replicas=strategy.num_replicas_in_sync, split_sizes=sizes)
    (run_dir / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run_callbacks(config: ExperimentConfig, run_dir: Path, state: dict | None, *, monitor: str,
                  checkpoint_monitor: str | None = None, tensorboard: bool = True):
    """The callbacks of a run (shared by every task's trainer), their states restored from `state`.

    Returns `(stateful, callbacks)`: `stateful` are the callbacks whose state survives a kill
    (time budget, LR schedule, early stopping), `callbacks` the full list for `fit`, ending with
    the checkpoint that saves the model and those states after every epoch.
    """
    import keras

    from skinkeras.training import callbacks as cb

    t = config.train
    saved = (state or {}).get("callbacks", {})
    stateful = {"time": cb.TimeBudget(t.max_minutes, state=saved.get("time"))}
    if t.lr_schedule == "plateau":
        stateful["schedule"] = cb.PlateauSchedule(monitor, t.plateau_factor, t.plateau_patience,
                                                  t.min_learning_rate, state=saved.get("schedule"))
    elif t.lr_schedule == "step":
        stateful["schedule"] = cb.StepSchedule(t.learning_rate, t.step_every, t.step_factor, t.min_learning_rate)
    elif t.lr_schedule != "constant":
        raise SkinkerasError(f"train.lr_schedule must be plateau, step or constant. Received: {t.lr_schedule!r}")
    if t.early_stopping_patience:
        stateful["early_stopping"] = cb.EarlyStop(monitor, t.early_stopping_patience,
                                                  state=saved.get("early_stopping"))
    checkpoint = cb.RunCheckpoint(run_dir, checkpoint_monitor or monitor, stateful,
                                  state=(state or {}).get("checkpoint"))
    callbacks = [
        cb.StopOnNonFiniteLoss(),
        *stateful.values(),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False, profile_batch=0))
    callbacks.append(checkpoint)  # last: stores the end-of-epoch state of the callbacks above
    return stateful, callbacks


def run_summary(config: ExperimentConfig, run_dir: Path, *, monitor: str, elapsed: float, images_seen: int,
                **extra) -> dict:
    """run.json's contents: epochs, best epoch and score, time, throughput, plus `extra` fields."""
    from skinkeras.training import callbacks as cb

    final = cb.load_run_state(run_dir) or {}
    return {
        "experiment": config.name,
        "task": config.task,
        "epochs_done": final.get("epochs_done", 0),
        "epochs_planned": config.train.epochs,
        "best_epoch": final.get("checkpoint", {}).get("best_epoch"),
        "best_" + monitor: final.get("checkpoint", {}).get("best"),
        "train_seconds_this_session": round(elapsed, 1),
        "train_seconds_total": round(final.get("callbacks", {}).get("time", {}).get("elapsed_seconds", elapsed), 1),
        "train_images_per_second": round(images_seen / elapsed, 2) if elapsed > 0 else None,
        **extra,
    }


def _reseed_model(model, seed: int, epoch: int) -> None:
    """Sets every random layer's (dropout's) seed state from (seed, epoch), so that a resumed
    epoch draws the same masks as in an uninterrupted run (a .keras file does not keep them)."""
    import numpy as np

    states = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    for index, state in enumerate(states):
        state.assign(np.array([seed * 1_000_003 + epoch * 7_919 + index, 0], dtype=state.dtype))


def _stop_requested(stateful: dict) -> bool:
    return any(c.state.get("stopped") or c.state.get("stopped_epoch") for c in stateful.values())


def _end_after_one_epoch_callback():
    import keras

    class EndAfterOneEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    return EndAfterOneEpoch()


def load_run_model(run_dir, which: str = "best"):
    """The run's best (or last) model, loaded in Keras safe mode."""
    from skinkeras.saving import load_model

    path = Path(run_dir) / ("best.keras" if which == "best" else "checkpoints/last.keras")
    if not path.exists():
        raise SkinkerasError(f"no {which} model in {run_dir} (expected {path})")
    return load_model(path)


