"""TFLite export for phones: float32, float16, dynamic-range and full-integer int8 models.

The converter gets a SavedModel with a fixed-shape, TFLite-friendly signature (strings and dynamic
resizing are not TFLite builtins, so the app does those):

    image     float32[1, S, S, 3]   raw RGB 0..255, already resized to S x S (metadata_encoding.json)
    metadata  float32[1, F]         the encoded metadata vector (metadata models only)
    -> probabilities float32[1, C]

and converts it with builtin ops only (`TFLITE_BUILTINS`; int8: `TFLITE_BUILTINS_INT8`, so any op
without an int8 kernel fails the conversion instead of silently staying float). Full-integer int8
is calibrated on a representative sample of the run's *training* split, through the evaluation
pipeline, with per-tensor weight scales (see `convert` for why and what was measured). Inputs and
outputs stay float32 so one app code path serves every variant.

Models run with the LiteRT interpreter (`ai_edge_litert.interpreter`), as on a phone.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

from skinkeras.errors import SkinkerasError
from skinkeras.export.litert import MODEL_FILE

log = logging.getLogger(__name__)

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
DEFAULT_CALIBRATION_SAMPLES = 200


def _concatenated_parts(model):
    """`(consumer, parts)` for a `build_classifier` graph whose first head Dense reads a
    concatenation: `parts` are `(tensor, rows)`, each concatenated part (before flattening) with
    the rows of the consumer's kernel that multiply it. None for any other graph."""
    import numpy as np
    from keras import layers

    from skinkeras.models.classifier import FUSION, HIDDEN, PREDICTIONS
    from skinkeras.models.soft_attention import (
        CONCAT,
        FLATTEN,
        POOL_ATTENDED,
        POOL_FEATURES,
    )

    names = {layer.name for layer in model.layers}
    consumer_name = HIDDEN if HIDDEN in names else PREDICTIONS
    if consumer_name not in names or not isinstance(model.get_layer(consumer_name), layers.Dense):
        return None
    consumer = model.get_layer(consumer_name)
    fused = list(model.get_layer(FUSION).input) if FUSION in names else [consumer.input]
    kernel = np.asarray(consumer.get_weights()[0])
    parts, offset = [], 0
    for tensor in fused:
        width = int(np.prod(tensor.shape[1:]))
        rows = kernel[offset:offset + width]
        offset += width
        flatten_layer = tensor._keras_history.operation
        sa_prefix = flatten_layer.name[: -len(FLATTEN)] if flatten_layer.name.endswith(FLATTEN) else None
        if sa_prefix and sa_prefix + CONCAT in names and sa_prefix + POOL_FEATURES in names:
            # Flatten(Dropout(ReLU(concat([f, a], channels)))): rows are ordered (h, w, 2C).
            pooled = [model.get_layer(sa_prefix + POOL_FEATURES).output,
                      model.get_layer(sa_prefix + POOL_ATTENDED).output]
            height, width_, channels = (int(d) for d in pooled[0].shape[1:])
            grid = rows.reshape(height, width_, 2 * channels, -1)
            for index, part in enumerate(pooled):
                part_rows = grid[:, :, index * channels:(index + 1) * channels].reshape(height * width_ * channels, -1)
                relu = layers.ReLU(name=f"{sa_prefix}_part{index}_relu")
                parts.append((relu(part), part_rows))
        else:
            parts.append((tensor, rows))
    if offset != kernel.shape[0] or len(parts) < 2:
        return None
    return consumer, parts


def concatenation_scales(model, inputs) -> list[float] | None:
    """Powers of two that bring each concatenated part of the head (see `rescale_concatenations`)
    to the range of the widest one, measured on `inputs` (a dict batch); None when the model has
    no such concatenation."""
    import keras
    import numpy as np

    found = _concatenated_parts(model)
    if found is None:
        return None
    probe = keras.Model(model.input, [tensor for tensor, _ in found[1]])
    ranges = [float(np.max(np.abs(np.asarray(out)))) for out in probe.predict_on_batch(inputs)]
    widest = max(ranges)
    return [float(2.0 ** np.round(np.log2(widest / r))) if r > 0 else 1.0 for r in ranges]


def rescale_concatenations(model, scales):
    """The same function as `model`, with each part of the concatenation that feeds the head's
    first Dense multiplied by `scales[i]` (powers of two: exact in float) and that Dense's rows
    for it divided by the same factor: `W [a; b] = (W_a / s) (s a) + W_b b`.

    Why: a TFLite int8 CONCATENATION has ONE scale for all its inputs. The soft-attention head
    concatenates the feature map with `gamma * attention * features` (gamma ~0.01: a range 100x
    smaller) and the fusion concatenates image and metadata features of unrelated ranges, so at
    the shared scale the small part is rounded to a few levels or to zero. Scaled to similar
    ranges, every part keeps its resolution, and the logits are still ONE Dense output: one
    rounding (summing per-part Dense outputs instead, as this once did, rounds the logits once
    per part and per sum; on the trained V3Small run those roundings alone flipped ~1 % of
    predictions). A model without such a concatenation, or `scales=None`, is returned unchanged.
    """
    import keras
    import numpy as np
    from keras import layers

    from skinkeras.models.classifier import HIDDEN, PREDICTIONS

    found = _concatenated_parts(model) if scales is not None else None
    if found is None:
        return model
    consumer, parts = found
    if len(scales) != len(parts):
        raise SkinkerasError(f"{len(parts)} concatenated parts but {len(scales)} scales")
    flat, rows = [], []
    for index, ((tensor, part_rows), scale) in enumerate(zip(parts, scales)):
        if scale != 1.0:
            tensor = layers.Rescaling(scale, name=f"{consumer.name}_part{index}_scale")(tensor)
        if len(tensor.shape) > 2:
            tensor = layers.Flatten(name=f"{consumer.name}_part{index}_flatten")(tensor)
        flat.append(tensor)
        rows.append(part_rows / scale)
    dense = layers.Dense(int(consumer.units), activation=consumer.activation, dtype=consumer.dtype_policy,
                         name=consumer.name)
    x = dense(layers.Concatenate(name=f"{consumer.name}_inputs")(flat))
    dense.set_weights([np.concatenate(rows), np.asarray(consumer.get_weights()[1])])
    if consumer.name == HIDDEN:
        x = model.get_layer(PREDICTIONS)(x)  # the Dropout between them is the identity here
    return keras.Model(model.input, x, name=model.name)  # see center_logits: names cost bytes


def logits_reference_class(logits) -> int:
    """The class whose logit, subtracted from every logit, leaves the narrowest range that int8
    must cover on `logits` (`[N, C]`): from the lowest top logit minus ln(512) (see
    `skinkeras.export.int8.quantize_int8`) to the highest logit."""
    import numpy as np

    from skinkeras.export.int8 import LOGITS_BELOW_TOP

    logits = np.asarray(logits, np.float64)
    widths = []
    for k in range(logits.shape[1]):
        top = (logits - logits[:, k:k + 1]).max(axis=1)
        widths.append(top.max() - top.min() + LOGITS_BELOW_TOP)
    return int(np.argmin(widths))


def center_logits(model, inputs):
    """The same probabilities as `model`, with the final softmax Dense (`predictions`) computing
    `z - z_k` instead of the logits `z`: its kernel and bias minus their column for the reference
    class `k` (`logits_reference_class` on `inputs`, a dict batch). Softmax ignores a shift shared
    by all classes, so only int8's logits range changes. The model's own layers are not changed.

    Why: raw logits are heavy-tailed. On confident images every logit grows (measured on a
    fine-tuned MobileNetV3Large: top logit 7 at the 99th percentile, 23.5 on one test image, with
    its second class at 14.5), so two classes clipped at the int8 range's top tied at 0.5 / 0.5:
    an image the float model called nv with probability 1.00 came out as mel. Relative to the
    reference class, the range needed to cover 1,500 training images shrank from [-6.4, 30.1]
    to [-6.2, 9.9], and no disagreement on the 1,200 test images is left where the float model
    was sure (largest top-1 margin of a disagreement 0.27, was 1.00; max |dp| 0.50 -> 0.18).
    A model without a softmax Dense named `predictions` is returned unchanged.
    """
    import keras
    import numpy as np
    from keras import layers

    from skinkeras.models.classifier import PREDICTIONS

    if len(model.outputs) != 1:
        return model
    dense, node_index, _ = model.outputs[0]._keras_history
    if (dense.name != PREDICTIONS or not isinstance(dense, layers.Dense)
            or getattr(dense.activation, "__name__", "") != "softmax"):
        return model
    # This graph's input to the Dense: the layer may also be called in another graph
    # (`rescale_concatenations` reuses it after a hidden Dense), so not `dense.input`.
    features = dense._inbound_nodes[node_index].input_tensors[0]
    kernel, bias = (np.asarray(w) for w in dense.get_weights())
    values = np.asarray(keras.Model(model.input, features).predict_on_batch(inputs))
    k = logits_reference_class(values @ kernel + bias)
    centered = layers.Dense(int(dense.units), activation="softmax", dtype=dense.dtype_policy, name=PREDICTIONS)
    output = centered(features)
    centered.set_weights([kernel - kernel[:, k:k + 1], bias - bias[k]])
    log.info("int8: logits relative to class %d", k)
    # The same name: the flatbuffer stores it in every tensor's name (a suffix cost 5.5 kB on V3Small).
    return keras.Model(model.input, output, name=model.name)


def _unfused_hard_swish(x):
    """hard_swish(x) = x * relu6(x + 3) / 6, written so the converter does not fuse it into HARD_SWISH."""
    from keras import ops

    return (x * (1.0 / 6.0)) * ops.relu6(x + 3.0)


def _all_layers(layer):
    for child in getattr(layer, "layers", ()):
        yield child
        yield from _all_layers(child)


@contextlib.contextmanager
def unfused_hard_swish(model):
    """While active, the model's hard-swish `Activation` layers compute `(x / 6) * relu6(x + 3)`.

    Why: XNNPACK (LiteRT's CPU delegate) runs HARD_SWISH in float only, so each int8 HARD_SWISH of
    MobileNetV3 (17 in V3Small) splits the delegated graph and runs as a reference kernel in
    between: the int8 model ran 3x slower than float32. As MUL / ADD+RELU6 / MUL the whole backbone
    stays in one int8 XNNPACK partition. The same function (float parity holds); the layers are
    restored on exit. The cost: three int8 roundings per hard swish instead of one.
    """
    import keras

    swapped = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.Activation)
               and getattr(layer.activation, "__name__", "") in ("hard_swish", "hard_silu")]
    originals = [layer.activation for layer in swapped]
    try:
        for layer in swapped:
            layer.activation = _unfused_hard_swish
        yield model
    finally:
        for layer, activation in zip(swapped, originals):
            layer.activation = activation


def tflite_archive(model, spec):
    """ExportArchive whose `serve` endpoint is the fixed-shape signature in the module docstring."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    size = spec.image_size
    image_spec = tf.TensorSpec([1, size, size, 3], tf.float32, name="image")
    if spec.metadata is None:
        def serve(image):
            return {"probabilities": tf.cast(model({"image": image}, training=False), tf.float32)}

        signature = [image_spec]
    else:
        def serve(image, metadata):
            return {"probabilities": tf.cast(model({"image": image, "metadata": metadata}, training=False),
                                             tf.float32)}

        signature = [image_spec, tf.TensorSpec([1, spec.metadata.num_features], tf.float32, name="metadata")]
    archive.add_endpoint(name="serve", fn=serve, input_signature=signature)
    return archive


def convert(model, spec, quantize: str = "float32", *, representative=None,
            per_channel: bool = False, split_hard_swish: bool = False,
            fake_quant_ranges: dict | None = None, bias_correction: bool = True,
            float_ops: bool = True) -> bytes:
    """The `.tflite` flatbuffer of `model` with `quantize` in QUANTIZATIONS.

    `representative`: for int8, a callable returning an iterable of input dicts
    (`{"image": float32[1, S, S, 3], "metadata": float32[1, F]}`), see `representative_dataset`.

    int8 only:
    `per_channel`: one scale per output channel of each weight (the converter's default) instead
    of one per tensor. Off by default: every per-channel weight *and* its bias carries a float32
    scale and an int64 zero point per channel (12 bytes; 23.5k of them in MobileNetV3Small + the
    Dense(4096) metadata branch, ~280 kB), which kept the file at 1/2.8 of float32. Measured on the
    trained 128 px runs (300 HAM10000 test images): per-tensor gave the same top-1 agreement within
    one image (V3Small 96.0 % vs 96.3 %) at 1/3.54 of float32 instead of 1/2.78.
    `split_hard_swish`: see `unfused_hard_swish`; the int8 backbone then runs in one XNNPACK
    partition (trained 128 px runs, 1 thread: V3Small 0.92x, V3Large 0.68x the float32 latency
    instead of 3.1x / 2.1x) but each hard swish is rounded more often (fine-tuned V3Small agreement
    97.4 % instead of 98.6 %, 1,200 test images).
    `fake_quant_ranges`: the ranges of a quantization-aware fine-tuning
    (`skinkeras.quantization`): those outputs are rounded with the ranges the
    weights were tuned for; the other tensors are calibrated as usual (see `skinkeras.export.int8`).
    `bias_correction`: see `skinkeras.export.int8.correct_biases`.
    `float_ops`: softmaxes and the image stem stay float32 (`skinkeras.export.int8.quantize_int8`);
    False: every op int8, as the converter does it.
    """
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise SkinkerasError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}. Received: {quantize!r}")
    if quantize == "int8" and representative is None:
        raise SkinkerasError("int8 quantization needs a representative dataset (the run's training images)")
    unfuse = quantize == "int8" and split_hard_swish
    with tempfile.TemporaryDirectory(prefix="skinkeras_tflite_") as tmp:
        saved = Path(tmp) / "saved_model"
        # Float variants keep the fused HARD_SWISH: XNNPACK runs it in float.
        with unfused_hard_swish(model) if unfuse else contextlib.nullcontext():
            graph = model
            if quantize == "int8":
                batch = _batch(representative)
                graph = center_logits(rescale_concatenations(model, concatenation_scales(model, batch)), batch)
            tflite_archive(graph, spec).write_out(str(saved), verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serve"])
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            if quantize == "float16":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_types = [tf.float16]
            elif quantize == "dynamic":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            elif quantize == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.representative_dataset = representative
                # A private converter attribute (TF 2.x has no public switch); checked so that a TF that
                # drops it fails here rather than silently writing per-channel models.
                if not hasattr(converter, "_experimental_disable_per_channel"):
                    raise SkinkerasError("this TensorFlow's TFLite converter cannot switch off per-channel quantization")
                converter._experimental_disable_per_channel = not per_channel
            try:
                if quantize == "int8":
                    from skinkeras.export.int8 import quantize_int8

                    return quantize_int8(converter, graph, representative, per_channel=per_channel,
                                         tuned_ranges=fake_quant_ranges, bias_correction=bias_correction,
                                         float_ops=float_ops)
                return converter.convert()
            except SkinkerasError:
                raise
            except Exception as error:  # the converter raises ConverterError and friends
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise SkinkerasError(f"TFLite conversion ({quantize}) failed with builtin ops only: {first}") from error


def _batch(representative, limit: int = 64) -> dict:
    """The first `limit` representative inputs as one batch dict."""
    import numpy as np

    items = [item for _, item in zip(range(limit), representative())]
    return {key: np.concatenate([np.asarray(item[key]) for item in items]) for key in items[0]}


def representative_dataset(run_dir, spec, data_root, *, samples: int = DEFAULT_CALIBRATION_SAMPLES, seed: int = 0):
    """A callable for `converter.representative_dataset`: `samples` images of the run's training
    split (a seeded random sample) as the evaluation pipeline prepares them. Each image is read
    and prepared once: an int8 conversion iterates the sample more than once (head scales,
    calibration, range matching), later passes replay the prepared arrays."""
    import numpy as np

    from skinkeras.export.samples import held_out_table, iterate_samples

    table = held_out_table(run_dir, data_root, "train", limit=samples, seed=seed)
    if len(table) == 0:
        raise SkinkerasError(f"no training images of {run_dir} under {data_root} to calibrate int8 with")
    source = iter(iterate_samples(table, spec))
    prepared: list[dict] = []

    def generate():
        index = 0
        while True:
            if index == len(prepared):
                try:
                    _, image, metadata = next(source)
                except StopIteration:
                    return
                item = {"image": image[None].astype(np.float32)}
                if spec.metadata is not None:
                    item["metadata"] = metadata[None].astype(np.float32)
                prepared.append(item)
            yield prepared[index]
            index += 1

    return generate


def export_tflite(model, spec, out_dir, quantize: str = "float32", *, representative=None,
                  force: bool = False, info: dict | None = None, **convert_options) -> Path:
    """Writes `out_dir/model.tflite`, labels.txt, metadata_encoding.json and export.json atomically.
    `convert_options`: `per_channel`, `split_hard_swish` of `convert` (int8)."""
    from skinkeras.export.serving import (
        finish_out_dir,
        prepare_out_dir,
        write_sidecar_files,
    )

    partial = prepare_out_dir(out_dir, force=force)
    flatbuffer = convert(model, spec, quantize, representative=representative, **convert_options)
    partial.mkdir(parents=True)
    (partial / MODEL_FILE).write_bytes(flatbuffer)
    write_sidecar_files(partial, spec, dict(info or {}, format="tflite", quantize=quantize))
    return finish_out_dir(partial, out_dir)
