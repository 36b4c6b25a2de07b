"""What a trainer compiles a model with: the optimizer of `train`, the classification loss (with
class weights from the training split's counts) and the classification metrics."""

from __future__ import annotations

import logging
from typing import Sequence

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)

LOSSES = ("cce", "focal")


def optimizer(train_config):
    """Adam (AdamW with weight decay) or SGD with Nesterov momentum, from the `train` section."""
    import keras

    t = train_config
    if t.optimizer == "adam":
        if t.weight_decay:
            return keras.optimizers.AdamW(t.learning_rate, weight_decay=t.weight_decay, epsilon=t.adam_epsilon)
        return keras.optimizers.Adam(t.learning_rate, epsilon=t.adam_epsilon)
    if t.optimizer == "sgd":
        return keras.optimizers.SGD(t.learning_rate, momentum=t.momentum, nesterov=True,
                                    weight_decay=t.weight_decay or None)
    raise SkinkerasError(f"train.optimizer must be adam or sgd. Received: {t.optimizer!r}")


def class_counts(table, num_classes: int) -> list[int]:
    """Images per class index in `table` (usually the training part)."""
    labels = table.samples["label_index"]
    return [int((labels == k).sum()) for k in range(num_classes)]


def classification_loss(train_config, counts: Sequence[int], class_names: Sequence[str] = ()):
    """The loss of `train.loss` weighted by `train.class_weights` computed from `counts`."""
    from skinkeras.training.class_weights import class_weights
    from skinkeras.training.losses import build_loss

    t = train_config
    if t.loss not in LOSSES:
        raise SkinkerasError(f"train.loss must be {' or '.join(LOSSES)}. Received: {t.loss!r}")
    weights = class_weights(counts, mode=t.class_weights)
    if class_names:
        log.info("class weights (%s): %s", t.class_weights,
                 ", ".join(f"{n} {w:.2f}" for n, w in zip(class_names, weights)))
    return build_loss(t.loss, class_weights=list(map(float, weights)), focal_gamma=t.focal_gamma)


def classification_metrics(num_classes: int) -> list:
    import keras

    return [
        keras.metrics.CategoricalAccuracy(name="accuracy"),
        # multi_label=True averages the per-class one-vs-rest AUCs: the macro AUC of the papers.
        keras.metrics.AUC(multi_label=True, num_labels=num_classes, name="auc"),
    ]
