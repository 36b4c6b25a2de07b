"""What a trainer compiles a model with: the optimizer of `train`, the classification loss (with
class weights from the training split's counts, and SPL / OHEM sample selection) and the
classification metrics."""

from __future__ import annotations

import logging
from typing import Sequence

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)

LOSSES = ("cce", "focal")
SAMPLE_SELECTIONS = ("none", "spl", "ohem")


def optimizer(train_config, precision: str | None = None):
    """Adam (AdamW with weight decay) or SGD with Nesterov momentum, from the `train` section, with
    a moving average of the weights for `train.ema_momentum` > 0 (the fit engine swaps it in for
    validation and checkpoints); with dynamic loss scaling under the `precision` "mixed_float16".

    Keras' `compile` adds the loss scaling only when the model's own dtype policy is
    mixed_float16, and ours are float32 functional models whose layers carry the policy (it is
    plumbed, not global), so it is added here: float16 gradients of small losses underflow to 0
    without it. bfloat16 has float32's range and needs none."""
    import keras

    t = train_config
    ema = getattr(t, "ema_momentum", 0.0)
    if not 0.0 <= ema < 1.0:
        raise SkinkerasError(f"train.ema_momentum must be in [0, 1) (0: no averaging). Received: {ema}")
    averaging = {"use_ema": True, "ema_momentum": ema} if ema else {}
    if t.optimizer == "adam":
        if t.weight_decay:
            chosen = keras.optimizers.AdamW(t.learning_rate, weight_decay=t.weight_decay, epsilon=t.adam_epsilon,
                                            **averaging)
        else:
            chosen = keras.optimizers.Adam(t.learning_rate, epsilon=t.adam_epsilon, **averaging)
    elif t.optimizer == "sgd":
        chosen = keras.optimizers.SGD(t.learning_rate, momentum=t.momentum, nesterov=True,
                                      weight_decay=t.weight_decay or None, **averaging)
    else:
        raise SkinkerasError(f"train.optimizer must be adam or sgd. Received: {t.optimizer!r}")
    if precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(chosen)
    return chosen


def class_counts(table, num_classes: int) -> list[int]:
    """Images per class index in `table` (usually the training part)."""
    labels = table.samples["label_index"]
    return [int((labels == k).sum()) for k in range(num_classes)]


def classification_loss(train_config, counts: Sequence[int], class_names: Sequence[str] = ()):
    """The loss of `train.loss` (CEL or FL) weighted by `train.class_weights` computed from
    `counts`, and with `train.sample_selection` (SPL / OHEM) a `SelectedLoss` around it; that one
    needs `selection_callbacks` in the fit (paper 003)."""
    from skinkeras.training.class_weights import CLASS_WEIGHT_MODES, class_weights
    from skinkeras.training.losses import build_loss

    t = train_config
    if t.loss not in LOSSES:
        raise SkinkerasError(f"train.loss must be {' or '.join(LOSSES)}. Received: {t.loss!r}")
    if t.class_weights not in CLASS_WEIGHT_MODES:
        raise SkinkerasError(f"train.class_weights must be one of {', '.join(CLASS_WEIGHT_MODES)}. "
                             f"Received: {t.class_weights!r}")
    beta = getattr(t, "class_weight_beta", 0.0)
    if beta >= 1:
        raise SkinkerasError(f"train.class_weight_beta must be < 1 (0: (N - 1) / N). Received: {beta}")
    selection = getattr(t, "sample_selection", "none")
    if selection not in SAMPLE_SELECTIONS:
        raise SkinkerasError(f"train.sample_selection must be one of {', '.join(SAMPLE_SELECTIONS)}. "
                             f"Received: {selection!r}")
    alpha = getattr(t, "selection_alpha", 0.0)
    if alpha < 0:
        raise SkinkerasError(f"train.selection_alpha must be >= 0 (0: automatic). Received: {alpha}")
    weights = [float(w) for w in class_weights(counts, mode=t.class_weights, beta=beta if beta > 0 else None)]
    if class_names:
        log.info("class weights (%s): %s", t.class_weights,
                 ", ".join(f"{n} {w:.2f}" for n, w in zip(class_names, weights)))
    smoothing = getattr(t, "label_smoothing", 0.0)
    if not 0.0 <= smoothing < 1.0:
        raise SkinkerasError(f"train.label_smoothing must be in [0, 1). Received: {smoothing}")
    if selection == "none":
        return build_loss(t.loss, class_weights=weights, focal_gamma=t.focal_gamma, label_smoothing=smoothing)
    from skinkeras.training.selection import SelectedLoss

    # The ranking is by the unweighted loss; the class weights multiply the chosen samples.
    return SelectedLoss(build_loss(t.loss, focal_gamma=t.focal_gamma, label_smoothing=smoothing), mode=selection, epochs=t.epochs,
                        alpha=alpha, class_weights=None if t.class_weights == "none" else weights)


def selection_callbacks(train_config) -> list:
    """The callbacks the loss of `classification_loss` needs in `fit`: the epoch of SPL / OHEM."""
    if getattr(train_config, "sample_selection", "none") == "none":
        return []
    from skinkeras.training.selection import SelectionSchedule

    return [SelectionSchedule()]


def classification_metrics(num_classes: int) -> list:
    import keras

    return [
        keras.metrics.CategoricalAccuracy(name="accuracy"),
        # multi_label=True averages the per-class one-vs-rest AUCs: the macro AUC of the papers.
        keras.metrics.AUC(multi_label=True, num_labels=num_classes, name="auc"),
    ]
