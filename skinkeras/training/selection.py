"""Curriculum sample selection within the mini-batch: self-paced learning (SPL) and online hard
example mining (OHEM), as paper 003 (Barata & Santiago, section 3.3) defines them.

In every mini-batch of M samples the m samples with the LOWEST loss (SPL: easy first) or the
HIGHEST loss (OHEM: hard first) get weight 1 and the others weight 0, with (eq. 9)

    m = M exp(alpha e) / (1 + exp(alpha e)) = M sigmoid(alpha e),

e the epoch counted from 0, so m = M/2 in the first epoch and m -> M later on. The paper only says
alpha "is defined so that all sample weights are set to 1 for the second half of training"; here
m is eq. 9 rounded half up, and the automatic alpha (`alpha=0`) is the smallest one for which that
rounded m is M from epoch E/2 on (E = total epochs):

    M sigmoid(alpha E / 2) >= M - 1/2   <=>   alpha >= 2 ln(2M - 1) / E.

For M = 20, E = 150: alpha = 2 ln 39 / 150 = 0.0488; m = 10 at e = 0, 13 at e = 14, 17 at e = 38,
19 at e = 74 and 20 from e = 75 on. (m = M/2 at e = 0 for even M; (M + 1)/2 for odd M.)
`selected_count` is that rule in NumPy (tests, logs); `SelectedLoss` computes the same in the graph.

Selection happens inside the compiled train step, so it is a loss wrapper: `SelectedLoss` computes
the base loss per sample, ranks the samples of the batch with `tf.math.top_k` (in float32, also
under mixed precision) and keeps the m chosen ones. The epoch is a non-trainable variable that
`SelectionSchedule` (an epoch-begin callback) assigns, so the tf.function is traced once.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np

SELECTION_MODES = ("spl", "ohem")
AVERAGES = ("selected", "batch")
# Rounding m half up: a margin against exp/log round-off at the exact tie M sigmoid = k + 1/2
# (the automatic alpha puts epoch E/2 exactly on one).
_ROUND_SLACK = 1e-6


def auto_alpha(batch_size: int, epochs: int) -> float:
    """The smallest alpha whose rounded m of eq. 9 reaches `batch_size` at epoch `epochs` / 2."""
    if batch_size < 1 or epochs < 1:
        raise ValueError(f"batch_size and epochs must be >= 1. Received: batch_size={batch_size}, epochs={epochs}")
    return 2.0 * math.log(2 * batch_size - 1) / epochs


def selected_count(batch_size: int, epoch: int, epochs: int, alpha: float = 0.0) -> int:
    """m of eq. 9: how many of `batch_size` samples count at `epoch` (0-based); `alpha=0`: auto."""
    alpha = alpha or auto_alpha(batch_size, epochs)
    share = 1.0 / (1.0 + math.exp(-alpha * epoch))
    return int(min(batch_size, max(1, math.floor(batch_size * share + 0.5 + _ROUND_SLACK))))


@keras.saving.register_keras_serializable(package="skinkeras")
class SelectedLoss(keras.losses.Loss):
    """A per-sample loss averaged over the m lowest-loss (SPL) or highest-loss (OHEM) samples of
    each mini-batch, m growing with the epoch (paper 003, eq. 9; see the module docstring).

    Class weights (CB / ES) are applied AFTER the ranking: samples are ranked by the loss itself,
    as in the paper, and the chosen ones are multiplied by the weight of their class. Ranking by
    the weighted loss would make OHEM choose rare-class samples first and SPL leave them out,
    adding a second, unintended class weighting on top of CB / ES. So give the base loss no class
    weights of its own (or it ranks by the weighted loss) and pass them here.

    `average="selected"` (default) divides the sum over the chosen samples by m, so the loss keeps
    the scale of a plain mean whatever m is; `average="batch"` divides by M, eq. 3 of the paper
    taken literally (the gradient then shrinks to half in the first epochs).

    Under a tf.distribute strategy the loss runs once per replica on the replica's part of the
    batch: M is the per-replica batch size and each replica selects its own m samples (what a
    single-device run of that batch size would do); Keras then sums the replicas' losses scaled by
    1 / replicas. The last, smaller batch of an epoch uses its own M (and automatic alpha).

    Outside `fit`, or with `fit` but without `SelectionSchedule`, it selects as in epoch 0;
    `SelectionSchedule` also switches the selection off while validating, so `val_loss` is the
    plain mean loss.

    Args:
        base_loss: a Keras loss whose `call` returns one loss per sample (e.g.
            `WeightedCategoricalCrossentropy`).
        mode: "spl" (lowest losses) or "ohem" (highest losses).
        epochs: total training epochs E, for the automatic alpha.
        alpha: the growth rate of m; 0: automatic (2 ln(2M - 1) / E).
        class_weights: one weight per class multiplying the chosen samples' losses, or None.
        average: "selected" (divide by m) or "batch" (divide by M).

    Example:
        >>> import numpy as np
        >>> from skinkeras.training.losses import WeightedCategoricalCrossentropy
        >>> loss = SelectedLoss(WeightedCategoricalCrossentropy(), mode="ohem", epochs=10)
        >>> y = np.eye(2)[[0, 0, 1, 1]]
        >>> p = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5], [0.2, 0.8]])
        >>> round(float(loss(y, p)), 4)  # epoch 0: the 2 highest of 4, (ln(1/0.6) + ln 2) / 2
        0.602
    """

    def __init__(
        self,
        base_loss,
        mode: str = "spl",
        epochs: int = 1,
        alpha: float = 0.0,
        class_weights: Sequence[float] | None = None,
        average: str = "selected",
        reduction="sum_over_batch_size",
        name: str | None = None,
        dtype=None,
    ):
        super().__init__(name=name or f"{mode}_{getattr(base_loss, 'name', 'loss')}", reduction=reduction,
                         dtype=dtype)
        if isinstance(base_loss, dict):
            base_loss = keras.saving.deserialize_keras_object(base_loss)
        if not isinstance(base_loss, keras.losses.Loss):
            raise ValueError(f"base_loss must be a keras.losses.Loss. Received: base_loss={base_loss!r}")
        if mode not in SELECTION_MODES:
            raise ValueError(f"mode must be one of {SELECTION_MODES}. Received: mode={mode!r}")
        if average not in AVERAGES:
            raise ValueError(f"average must be one of {AVERAGES}. Received: average={average!r}")
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a whole number >= 1. Received: epochs={epochs!r}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0 (0: automatic). Received: alpha={alpha}")
        if class_weights is not None:
            class_weights = [float(w) for w in np.asarray(class_weights, dtype="float64").ravel()]
            if not class_weights or any(w < 0 for w in class_weights):
                raise ValueError(f"class_weights must be a non-empty list of weights >= 0. "
                                 f"Received: class_weights={class_weights}")
        self.base_loss = base_loss
        self.mode, self.epochs, self.alpha, self.average = mode, epochs, float(alpha), average
        self.class_weights = class_weights
        # Not saved with the model: the schedule callback sets both at every epoch begin, from the
        # epoch number alone, so a resumed run selects as an uninterrupted one would.
        self.epoch = keras.Variable(0, dtype="int32", trainable=False, autocast=False, name="selection_epoch")
        self.selecting = keras.Variable(1, dtype="int32", trainable=False, autocast=False, name="selecting")

    def set_epoch(self, epoch: int) -> None:
        """Select as in `epoch` (0-based) from the next batch on."""
        self.epoch.assign(int(epoch))

    def set_selecting(self, on: bool) -> None:
        """Off: every sample counts (validation); on: select."""
        self.selecting.assign(int(bool(on)))

    def call(self, y_true, y_pred):
        import tensorflow as tf

        losses = self.base_loss.call(y_true, y_pred)
        losses = tf.cast(losses, "float32")  # rank (and sum) in float32 under mixed precision too
        size = tf.shape(losses)[0]
        m = self._count(size)
        m = tf.where(self.selecting.value > 0, m, size)
        # Order the batch by loss (SPL: ascending, OHEM: descending) and keep the first m. top_k
        # over the whole batch, not k = m: XLA needs a static k, and M is static there.
        keys = -losses if self.mode == "spl" else losses
        _, order = tf.math.top_k(tf.stop_gradient(keys), k=size, sorted=True)
        chosen = tf.cast(tf.range(size) < m, "float32")
        mask = tf.scatter_nd(order[:, None], chosen, tf.shape(losses))
        if self.average == "selected":
            mask = mask * (tf.cast(size, "float32") / tf.cast(m, "float32"))
        losses = losses * mask
        if self.class_weights is not None:
            weights = tf.constant(self.class_weights, dtype="float32")
            losses = losses * tf.reduce_sum(tf.cast(y_true, "float32") * weights, axis=-1)
        return losses

    def _count(self, size):
        """m of eq. 9 for a batch of `size` samples at the current epoch (as `selected_count`)."""
        import tensorflow as tf

        batch = tf.cast(size, "float64")
        if self.alpha:
            alpha = tf.constant(self.alpha, "float64")
        else:
            alpha = 2.0 * tf.math.log(2.0 * batch - 1.0) / float(self.epochs)
        share = tf.math.sigmoid(alpha * tf.cast(self.epoch.value, "float64"))
        m = tf.math.floor(batch * share + 0.5 + _ROUND_SLACK)
        return tf.cast(tf.clip_by_value(m, 1.0, tf.maximum(batch, 1.0)), "int32")

    def get_config(self):
        config = super().get_config()
        config.update(
            base_loss=keras.saving.serialize_keras_object(self.base_loss),
            mode=self.mode,
            epochs=self.epochs,
            alpha=self.alpha,
            class_weights=self.class_weights,
            average=self.average,
        )
        return config


class SelectionSchedule(keras.callbacks.Callback):
    """Tells the model's `SelectedLoss`es the epoch at every epoch begin, and switches their
    selection off while validating (and after training), so that validation scores every sample.

    It finds the losses on the model it is given by `fit` (`model.loss`, single, list or dict), so
    it keeps working on a model reloaded from a checkpoint for `--resume`.
    """

    def _losses(self):
        return selected_losses(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        for loss in self._losses():
            loss.set_epoch(epoch)
            loss.set_selecting(True)

    def on_test_begin(self, logs=None):
        for loss in self._losses():
            loss.set_selecting(False)

    def on_train_end(self, logs=None):
        for loss in self._losses():
            loss.set_selecting(False)


def selected_losses(model) -> list[SelectedLoss]:
    """The `SelectedLoss`es a model is compiled with."""
    loss = getattr(model, "loss", None)
    if isinstance(loss, dict):
        loss = list(loss.values())
    losses = loss if isinstance(loss, (list, tuple)) else [loss]
    return [item for item in losses if isinstance(item, SelectedLoss)]
