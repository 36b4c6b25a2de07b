"""Quantization-aware fine-tuning: a trained run, fine-tuned with int8 rounding simulated, as a new run.

Why: full-integer post-training quantization rounds every activation to 256 levels per tensor.
MobileNetV3Small trained from scratch on HAM10000 has heavy-tailed activations (a few calibration
images reach 30 where the median image reaches 5), so the per-tensor ranges are wide, typical
activations get a handful of levels, and the rounding noise compounds through the network: the int8
model agreed with the Keras model on 94.8 % of the test images (the export check asks for 98 %).
Fine-tuning a few epochs with that rounding in the forward pass teaches the weights to tolerate it.
Measured (16 epochs at 2e-5, `runs/accept_mnv3s_128`, 1,200 test images): agreement 97.75 % with
the converter's own calibration, 98.58 % with `skinkeras.export`'s int8 corrections (94.2 % / 96.4 %
without fine-tuning); the tuned model itself is better (balanced accuracy 0.559 -> 0.586, macro AUC
0.904 -> 0.928). The margin stays small: that model's own decisions are fragile (adding +-1 to the
pixel values flips 0.7-1.2 % of its predictions).

How: `with_fake_quant` clones the model graph around the *same* layer objects (weights shared) and
puts a `FakeQuant` after each output that the TFLite int8 kernels round: every BatchNormalization
(conv + BN are one op in TFLite), activation, Add / Multiply, pooling, Dense and biased conv, but
not before a ReLU that TFLite fuses into the op before it; the logits before the softmax; and the
kernels, per tensor after BatchNorm folding. Rounding uses a moving min/max range, as the
converter's calibration does, with a straight-through gradient. BatchNormalization is frozen
(TFLite folds its moving statistics into the conv). The ranges are saved with the run
(RANGES_FILE) and the int8 export uses them. Training the clone trains the original model;
the run keeps that plain model (no FakeQuant layers), so it evaluates and exports like any run, and
the export's verification compares the int8 model with exactly the model the run evaluates.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import keras
from keras import layers, ops

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)

RUN_INFO_KEY = "quantization_aware"
RANGES_FILE = "int8_ranges.json"  # the FakeQuant ranges of best.keras, for the int8 export


@keras.saving.register_keras_serializable(package="skinkeras")
class FakeQuant(layers.Layer):
    """Rounds its input to the 256 levels of an asymmetric int8 tensor, as TFLite does.

    The range is a moving average of the batch minimum / maximum (updated in training, fixed in
    inference), widened to include zero; the levels are `(q - zero_point) * scale` with an integer
    zero point, so zero is exact (padding, ReLU zeros). The gradient passes straight through.
    Until the first training batch the range is empty and the layer is the identity.
    """

    def __init__(self, momentum: float = 0.99, num_bits: int = 8, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1). Received: {momentum}")
        if not 2 <= num_bits <= 8:
            raise ValueError(f"num_bits must be in 2..8. Received: {num_bits}")
        self.momentum = momentum
        self.num_bits = num_bits

    def build(self, input_shape):
        self.range_min = self.add_weight(shape=(), initializer="zeros", trainable=False, name="range_min")
        self.range_max = self.add_weight(shape=(), initializer="zeros", trainable=False, name="range_max")
        self.observed = self.add_weight(shape=(), initializer="zeros", trainable=False, name="observed")

    def call(self, x, training=False):
        import tensorflow as tf

        x32 = ops.cast(x, "float32")
        if training:
            batch_min, batch_max = ops.min(x32), ops.max(x32)
            first = ops.equal(self.observed, 0.0)
            m = self.momentum
            self.range_min.assign(ops.where(first, batch_min, m * self.range_min + (1.0 - m) * batch_min))
            self.range_max.assign(ops.where(first, batch_max, m * self.range_max + (1.0 - m) * batch_max))
            self.observed.assign(1.0)
        low = ops.minimum(self.range_min, 0.0)
        high = ops.maximum(self.range_max, 0.0)
        # TensorFlow's op: TFLite's nudged int8 grid, gradient straight through inside the range
        # (zero outside), and the TFLite converter reads its range as the tensor's quantization.
        rounded = tf.quantization.fake_quant_with_min_max_vars(x32, low, high, num_bits=self.num_bits,
                                                               narrow_range=False)
        rounded = ops.where(high - low > 0.0, rounded, x32)  # no range observed yet: identity
        return ops.cast(rounded, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "num_bits": self.num_bits}


_ROUNDED_OUTPUTS = (layers.BatchNormalization, layers.ReLU, layers.Activation, layers.Add, layers.Multiply,
                    layers.Rescaling, layers.GlobalAveragePooling2D, layers.AveragePooling2D, layers.Dense,
                    layers.Conv2D, layers.DepthwiseConv2D)


def _consumers(model) -> dict[str, list]:
    """Layer name -> the operations (layers and raw ops) that take its output, through nested
    functional models."""
    consumers: dict[str, list] = {}

    def walk(graph):
        for operation in graph.operations:  # layers and raw ops (`x + 3.0`)
            for node in operation._inbound_nodes:
                for parent in node.parent_nodes:
                    consumers.setdefault(parent.operation.name, []).append(operation)
            if isinstance(operation, keras.Model):
                walk(operation)

    walk(model)
    return consumers


def _is_relu(layer) -> bool:
    if isinstance(layer, layers.ReLU):
        return True
    return isinstance(layer, layers.Activation) and getattr(layer.activation, "__name__", "") in ("relu", "relu6")


SPLIT_SUFFIXES = ("_x_over_6", "_relu6_x_plus_3")  # the roundings inside a split hard swish


def _is_hard_swish(layer) -> bool:
    name = getattr(getattr(layer, "activation", None), "__name__", "")
    return isinstance(layer, layers.Activation) and name in ("hard_swish", "hard_silu", "_unfused_hard_swish")


def uses_split_hard_swish(ranges: dict | None) -> bool:
    """Whether `ranges` come from a fine-tuning with `split_hard_swish=True`."""
    return bool(ranges) and any(name.endswith(SPLIT_SUFFIXES[1]) for name in ranges)


def _rounded_kernel(layer, batchnorm=None):
    """`layer.kernel` rounded as TFLite int8 stores it: symmetric, one scale per tensor, after the
    converter folds a following BatchNormalization into it (rounded folded, then unfolded here so
    the BatchNormalization still applies). Straight-through gradient."""
    kernel = layer.kernel
    if batchnorm is not None:
        factor = ops.rsqrt(batchnorm.moving_variance + batchnorm.epsilon)
        if batchnorm.scale:
            factor = factor * batchnorm.gamma
        if isinstance(layer, layers.DepthwiseConv2D):
            factor = ops.reshape(factor, kernel.shape[2:])
        factor = ops.where(ops.equal(factor, 0.0), 1.0, factor)  # gamma 0: a dead channel, nothing to fold
    else:
        factor = ops.ones((), dtype=kernel.dtype)
    folded = kernel * factor
    scale = ops.maximum(ops.max(ops.abs(folded)) / 127.0, 1e-12)
    rounded = ops.round(folded / scale) * scale / factor
    return kernel + ops.stop_gradient(rounded - kernel)


class _WithRoundedWeights(layers.Layer):
    """Calls a Conv2D / DepthwiseConv2D / Dense with its kernel rounded (`_rounded_kernel`); holds
    the layer, so its weights train. Never saved."""

    def __init__(self, layer, batchnorm=None, **kwargs):
        super().__init__(name=f"{layer.name}_rounded_weights", **kwargs)
        self.inner = layer
        self.batchnorm = batchnorm

    def call(self, x):
        layer = self.inner
        kernel = _rounded_kernel(layer, self.batchnorm)
        if isinstance(layer, layers.DepthwiseConv2D):
            y = ops.depthwise_conv(x, kernel, strides=layer.strides, padding=layer.padding,
                                   dilation_rate=layer.dilation_rate, data_format=layer.data_format)
        elif isinstance(layer, layers.Conv2D):
            y = layer.convolution_op(x, kernel)
        else:
            y = ops.matmul(x, kernel)
        if layer.use_bias:
            y = y + layer.bias  # channels_last (the only layout the classifiers use)
        return layer.activation(y) if layer.activation is not None else y

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)


def _is_softmax_dense(layer) -> bool:
    return isinstance(layer, layers.Dense) and getattr(layer.activation, "__name__", "") == "softmax"


class _SoftmaxOfRoundedLogits(layers.Layer):
    """`softmax(round(x W + b))`: a softmax Dense with its logits rounded, as TFLite int8 rounds the
    FULLY_CONNECTED output before SOFTMAX. Holds the Dense, so its weights train; never saved."""

    def __init__(self, dense, fake_quant, round_weights=False, **kwargs):
        super().__init__(name=f"{dense.name}_rounded_logits", **kwargs)
        self.dense = dense
        self.fake_quant = fake_quant
        self.round_weights = round_weights

    def call(self, x, training=False):
        logits = ops.matmul(x, _rounded_kernel(self.dense) if self.round_weights else self.dense.kernel)
        if self.dense.use_bias:
            logits = logits + self.dense.bias
        return ops.softmax(self.fake_quant(logits, training=training), axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dense.units)


def _rounds_output(layer, consumers) -> bool:
    """Whether TFLite int8 rounds this layer's output to its own int8 tensor."""
    if isinstance(layer, keras.Model):
        return False
    custom = type(layer).__module__.startswith("skinkeras")  # attention blocks etc.: their output tensor
    if not (custom or isinstance(layer, _ROUNDED_OUTPUTS)):
        return False  # Flatten, Reshape, Dropout, Concatenate...: no new rounding
    if isinstance(layer, FakeQuant):
        return False
    if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)) and not layer.use_bias:
        return False  # followed by BatchNormalization, folded into this conv by the converter
    if _is_softmax_dense(layer):
        return False  # its logits are rounded instead (`_SoftmaxOfRoundedLogits`)
    after = consumers.get(layer.name, [])
    if after and all(_is_relu(c) for c in after) and not _is_relu(layer):
        return False  # the converter fuses the ReLU into this op: one rounding, after the ReLU
    if (after and getattr(layer, "use_bias", False) and isinstance(layer, (layers.Conv2D, layers.Dense))
            and not any(isinstance(c, layers.Layer) for c in after)):
        return False  # `conv(x) + 3` (hard sigmoid): the converter folds the constant into the bias
    return True


def with_fake_quant(model, *, momentum: float = 0.99, num_bits: int = 8, ranges: dict | None = None,
                    split_hard_swish: bool = False, round_weights: bool = False):
    """`(clone, fake_quants)`: the model's graph with a `FakeQuant` after every int8-rounded
    output (see the module docstring), built from the same layer objects: training the clone
    trains `model`.

    `ranges` (`{fake_quant_name: [min, max]}`, as `fake_quant_ranges` returns): only those outputs
    get a `FakeQuant`, with that fixed range (how an export carries a fine-tuning's ranges into
    the TFLite converter). `split_hard_swish`: hard swish as the int8 export with
    `--int8-split-hard-swish` computes it, `(x / 6) * relu6(x + 3)`, each of the three rounded.
    `round_weights`: conv / dense kernels rounded as the int8 export stores them
    (`_rounded_kernel`; the softmax Dense's kernel is rounded whenever its logits are).
    """
    consumers = _consumers(model)
    fake_quants = []

    def new_fake_quant(name):
        if ranges is not None and name not in ranges:
            return None
        fake_quant = FakeQuant(momentum=momentum, num_bits=num_bits, name=name)
        fake_quants.append(fake_quant)
        return fake_quant

    def call_function(layer, *args, **kwargs):
        if split_hard_swish and _is_hard_swish(layer) and not kwargs and len(args) == 1:
            # Named layers, not raw ops: op names must be unique in the (nested) clone.
            x = args[0]
            parts = []
            over_6 = layers.Rescaling(1.0 / 6.0, name=f"{layer.name}{SPLIT_SUFFIXES[0]}")(x)
            plus_3 = layers.Rescaling(1.0, offset=3.0, name=f"{layer.name}_x_plus_3")(x)
            relu6 = layers.ReLU(6.0, name=f"{layer.name}{SPLIT_SUFFIXES[1]}")(plus_3)
            for suffix, value in zip(SPLIT_SUFFIXES, (over_6, relu6)):
                fake_quant = new_fake_quant(f"{layer.name}_fake_quant{suffix}")
                parts.append(fake_quant(value) if fake_quant else value)
            product = layers.Multiply(name=f"{layer.name}_product")(parts)
            fake_quant = new_fake_quant(f"{layer.name}_fake_quant")
            return fake_quant(product) if fake_quant else product
        if _is_softmax_dense(layer) and not kwargs and len(args) == 1:
            fake_quant = new_fake_quant(f"{layer.name}_fake_quant")
            if fake_quant is None:
                return layer(*args)
            return _SoftmaxOfRoundedLogits(layer, fake_quant, round_weights)(*args)
        if (round_weights and not kwargs and len(args) == 1 and not isinstance(layer, keras.Model)
                and isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense))
                and getattr(layer, "data_format", "channels_last") == "channels_last"):
            after = consumers.get(layer.name, [])
            batchnorm = after[0] if len(after) == 1 and isinstance(after[0], layers.BatchNormalization) else None
            outputs = _WithRoundedWeights(layer, batchnorm)(args[0])
        else:
            outputs = layer(*args, **kwargs)
        if not _rounds_output(layer, consumers) or not hasattr(outputs, "shape"):
            return outputs
        fake_quant = new_fake_quant(f"{layer.name}_fake_quant")
        return fake_quant(outputs) if fake_quant else outputs

    clone = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call_function,
                                     recursive=True)
    for fake_quant in fake_quants if ranges is not None else ():
        low, high = ranges[fake_quant.name]
        fake_quant.range_min.assign(float(low))
        fake_quant.range_max.assign(float(high))
        fake_quant.observed.assign(1.0)
    if not fake_quants:
        raise SkinkerasError(f"{model.name}: found no int8-rounded outputs to simulate")
    return clone, fake_quants


def fake_quant_ranges(fake_quants) -> dict[str, list[float]]:
    """`{name: [min, max]}` of the fake quants that have observed a range."""
    return {fq.name: [float(fq.range_min.numpy()), float(fq.range_max.numpy())]
            for fq in fake_quants if float(fq.observed.numpy()) > 0}


def fake_quant_inputs(model, ranges: dict, inputs) -> dict:
    """`{fake_quant_name: float32 array}`: what each of `ranges`' roundings would round, for one
    batch of `inputs` through `model` (no rounding applied). Used to find, by value, the tensor
    of a converted model that each range belongs to."""
    import numpy as np

    graph, fake_quants = with_fake_quant(model, ranges=ranges, split_hard_swish=uses_split_hard_swish(ranges))
    seen = {}
    for fake_quant in fake_quants:
        def record(x, training=False, _name=fake_quant.name):
            seen[_name] = np.asarray(x, dtype="float32")
            return x

        fake_quant.call = record  # this throwaway clone only: identity, remembering its input
    graph(inputs, training=False)
    return seen


def load_fake_quant_ranges(run_dir) -> dict | None:
    """The ranges a quantization-aware run was fine-tuned with (RANGES_FILE), or None."""
    path = Path(run_dir) / RANGES_FILE
    if not path.exists():
        return None
    ranges = json.loads(path.read_text())
    if not isinstance(ranges, dict) or not all(isinstance(v, list) and len(v) == 2 for v in ranges.values()):
        raise SkinkerasError(f"{path} is not a {{name: [min, max]}} table of int8 ranges")
    return ranges


def freeze_batchnorm(model) -> int:
    """Puts every BatchNormalization in inference mode for good (trainable=False); returns how many."""
    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
            count += 1
    return count


def finetune_quantization_aware(source_run, out_dir, *, epochs: int = 16, learning_rate: float = 2e-5,
                                simulate_bits: int = 8, split_hard_swish: bool = False, data_root=None,
                                observe_batches: int = 8, verbose="auto") -> dict:
    """Fine-tunes `source_run`'s best model with int8 rounding simulated into a new run `out_dir`.

    `out_dir` gets the source's config and lesion split (so the test split stays unseen), its own
    best.keras (the plain model at the best validation score, epoch 0 being the source model
    itself), history.csv and run.json; evaluate and export it like any run. Returns run.json's
    contents.
    """
    from skinkeras.experiments.config import load_config, save_config
    from skinkeras.training import trainer

    source_run, out_dir = Path(source_run), Path(out_dir)
    if epochs < 1:
        raise SkinkerasError(f"--epochs must be at least 1. Received: {epochs}")
    if not learning_rate > 0:
        raise SkinkerasError(f"--learning-rate must be positive. Received: {learning_rate}")
    for needed in ("config.json", trainer.SPLIT_FILE, "best.keras"):
        if not (source_run / needed).exists():
            raise SkinkerasError(f"{source_run} is not a finished training run: it has no {needed}")
    if out_dir.resolve() == source_run.resolve():
        raise SkinkerasError("--out must be a new run directory, not the source run")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise SkinkerasError(f"{out_dir} exists and is not empty; choose a new --out")
    config = load_config(source_run / "config.json")
    if config.task != "classification":
        raise SkinkerasError(f"quantization-aware fine-tuning is for classification runs; {source_run} is {config.task}")
    if data_root:
        from skinkeras.experiments import apply_overrides

        config = apply_overrides(config, [f"data.root={Path(data_root).resolve()}"])

    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(source_run / trainer.SPLIT_FILE, out_dir / trainer.SPLIT_FILE)
    save_config(config, out_dir / "config.json")
    keras.utils.set_random_seed(config.train.seed)
    data = trainer.check_images_once(trainer.prepare_data(config, out_dir), out_dir)

    model = trainer.load_run_model(source_run)
    frozen = freeze_batchnorm(model)
    simulated, fake_quants = with_fake_quant(model, num_bits=simulate_bits, split_hard_swish=split_hard_swish,
                                             round_weights=True)
    log.info("%s: %d int8 roundings simulated, %d BatchNormalization layers frozen", model.name,
             len(fake_quants), frozen)
    loss = trainer._loss(config, data)
    metrics = lambda: trainer._metrics(len(data.class_names))  # noqa: E731  (one set per model)
    simulated.compile(optimizer=keras.optimizers.Adam(learning_rate, epsilon=config.train.adam_epsilon),
                      loss=loss, metrics=metrics())

    # The ranges start at the ranges of a few training batches (as a calibration would), so the
    # first gradient steps already see int8 rounding.
    for images, _ in trainer.make_dataset(config, data, "train", training=True, epoch=10_000).take(observe_batches):
        simulated(images, training=True)

    monitor = config.train.monitor if config.train.monitor in ("val_auc", "val_loss", "val_accuracy") else "val_auc"
    better = (lambda a, b: a < b) if monitor == "val_loss" else (lambda a, b: a > b)
    val = trainer.make_dataset(config, data, "val", training=False)

    def validate():
        # The plain model stays uncompiled (compiling it would save an optimizer into best.keras).
        import numpy as np

        scores, losses, count = metrics(), [], 0
        for images, labels in val:
            probabilities = model(images, training=False)
            losses.append(float(loss(labels, probabilities)) * int(labels.shape[0]))
            count += int(labels.shape[0])
            for metric in scores:
                metric.update_state(labels, probabilities)
        return {"val_loss": float(np.sum(losses) / max(count, 1)),
                **{f"val_{metric.name}": float(metric.result()) for metric in scores}}

    started = time.monotonic()
    scores = validate()
    history = [{"epoch": 0, **scores}]
    best_epoch, best = 0, scores[monitor]
    _save_best(model, fake_quants, out_dir)
    log.info("source model: %s", _fmt(scores))
    steps = max(1, int((data.table.samples["split"] == "train").sum()) // config.data.batch_size)
    for epoch in range(1, epochs + 1):
        train_ds = trainer.make_dataset(config, data, "train", training=True, epoch=epoch)
        fit = simulated.fit(train_ds, epochs=1, steps_per_epoch=steps, verbose=verbose)
        scores = validate()
        row = {"epoch": epoch, **{key: float(values[-1]) for key, values in fit.history.items()}, **scores}
        history.append(row)
        improved = better(scores[monitor], best)
        if improved:
            best_epoch, best = epoch, scores[monitor]
            _save_best(model, fake_quants, out_dir)
        log.info("epoch %d/%d: %s%s", epoch, epochs, _fmt(row), " (best)" if improved else "")
        _write_history(out_dir / "history.csv", history)

    summary = {
        "experiment": config.name,
        "task": config.task,
        "epochs_done": epochs,
        "epochs_planned": epochs,
        "best_epoch": best_epoch,
        "best_" + monitor: best,
        "train_seconds_total": round(time.monotonic() - started, 1),
        "precision": model.dtype_policy.name,
        RUN_INFO_KEY: {
            "source_run": str(source_run.resolve()),
            "epochs": epochs,
            "learning_rate": learning_rate,
            "simulated_bits": simulate_bits,
            "split_hard_swish": split_hard_swish,
            "simulated_roundings": len(fake_quants),
            "batchnorm_frozen": frozen,
            "source_" + monitor: history[0][monitor],
        },
    }
    (out_dir / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _save_best(model, fake_quants, out_dir: Path) -> None:
    """best.keras and the ranges it was validated with, each written atomically."""
    from skinkeras.training.callbacks import atomic_save_model, atomic_write_json

    atomic_save_model(model, out_dir / "best.keras")
    atomic_write_json(fake_quant_ranges(fake_quants), out_dir / RANGES_FILE)


def _fmt(scores: dict) -> str:
    return ", ".join(f"{key} {value:.4f}" for key, value in scores.items() if key != "epoch")


def _write_history(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    partial = path.with_suffix(".csv.partial")
    pd.DataFrame(rows).to_csv(partial, index=False)
    partial.replace(path)
