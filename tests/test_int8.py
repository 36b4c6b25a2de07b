"""int8 quantization steps (`skinkeras.export.int8`) on a tiny conv net with random weights."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tiny_conversion(tmp_path_factory):
    """(calibrated float flatbuffer, its per-tensor int8 quantization, representative callable)."""
    import keras
    import tensorflow as tf
    from keras import layers
    from tensorflow.lite.python.convert import mlir_quantize

    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    depthwise = layers.DepthwiseConv2D(3, padding="same")
    x = depthwise(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(12, 1)(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(4, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    # Channels of very different magnitude share the per-tensor weight scale, so the small kernels
    # round coarsely, as in a trained MobileNet's depthwise layers: a systematic output shift.
    kernel, bias = depthwise.get_weights()
    depthwise.set_weights([kernel * np.logspace(0, -2, kernel.shape[2])[None, None, :, None], bias])
    rng = np.random.default_rng(0)
    items = [{"image": rng.uniform(0, 255, (1, 16, 16, 3)).astype("float32")} for _ in range(16)]

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serve", fn=lambda image: {"probabilities": model(image)},
                         input_signature=[tf.TensorSpec([1, 16, 16, 3], tf.float32, name="image")])
    saved = tmp_path_factory.mktemp("tiny_int8") / "saved_model"
    archive.write_out(str(saved), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serve"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: iter(items)
    converter._experimental_calibrate_only = True
    calibrated = bytes(converter.convert())
    quantized = bytes(mlir_quantize(calibrated, True, input_data_type=tf.float32, output_data_type=tf.float32))
    return calibrated, quantized, lambda: iter(items)


def mean_errors(quantized: bytes, calibrated: bytes, items) -> list[float]:
    """Largest |per-channel mean int8 output - float output| of each correctable layer, in steps of
    that layer's output scale."""
    from tensorflow.lite.tools import flatbuffer_utils

    from skinkeras.export.int8 import _inspecting_interpreter, channel_statistics, correctable_layers

    flat = flatbuffer_utils.read_model_from_bytearray(quantized)
    tensors = flat.subgraphs[0].tensors
    reference = _inspecting_interpreter(calibrated)
    by_name = {d["name"]: d["index"] for d in reference.get_tensor_details()}
    outputs = [output for output, _ in correctable_layers(flat)]
    floats = {i: m for i, (m, _) in channel_statistics(
        reference, [by_name[tensors[o].name.decode()] for o in outputs], items).items()}
    ints = {i: m for i, (m, _) in channel_statistics(_inspecting_interpreter(quantized), outputs, items).items()}
    errors = []
    for output in outputs:
        q = tensors[output].quantization
        dequantized = (ints[output] - q.zeroPoint[0]) * q.scale[0]
        errors.append(float(np.max(np.abs(dequantized - floats[by_name[tensors[output].name.decode()]])) / q.scale[0]))
    return errors


def test_correctable_layers_are_the_biased_layers_except_the_logits(tiny_conversion):
    from tensorflow.lite.tools import flatbuffer_utils

    from skinkeras.export.int8 import correctable_layers

    _, quantized, _ = tiny_conversion
    flat = flatbuffer_utils.read_model_from_bytearray(quantized)
    tensors = flat.subgraphs[0].tensors
    layers = correctable_layers(flat)
    # conv, depthwise, 1x1 conv; the Dense computes the logits and is left alone.
    assert len(layers) == 3
    assert all(tensors[bias].type == 2 for _, bias in layers)  # TensorType.INT32
    assert not any(b"dense" in tensors[output].name for output, _ in layers)


def test_bias_correction_brings_each_layer_mean_to_the_float_model(tiny_conversion):
    """After correction each layer's per-channel mean output on the calibration images equals the
    float model's to a small fraction of a step; before, the int8 rounding had shifted them. (The
    tiny model's biases are all zero, so the converter stores them in one shared buffer.)"""
    from skinkeras.export.int8 import correct_biases

    calibrated, quantized, representative = tiny_conversion
    items = list(representative())
    before = mean_errors(quantized, calibrated, items)
    corrected = correct_biases(quantized, calibrated, representative, samples=len(items))
    after = mean_errors(corrected, calibrated, items)
    assert len(corrected) < len(quantized) * 1.05  # the same graph, re-serialized
    assert max(before) > 0.1
    # Every layer, the conv with a fused ReLU (half its outputs clamped at zero) included, is
    # corrected to within a small fraction of a step.
    assert max(after) < 0.05, (before, after)
