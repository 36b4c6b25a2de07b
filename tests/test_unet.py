"""U-Net segmenters: shapes at odd sizes, one training step, .keras round trip in safe mode,
mixed precision, the backbone-encoder variant and its errors."""

import keras
import numpy as np
import pytest

from skinkeras.models.unet import (
    ENCODER_SKIPS,
    CropToReference,
    PadToMultiple,
    build_unet,
    build_unet_encoder,
)
from tests import harness


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=shape).astype("float32")


def _check_probabilities(model, images):
    out = harness.check_eager_call(model, images, expect_dtype="float32", probabilities=False)[0]
    assert out.shape == (*images.shape[:3], 1)
    assert out.min() >= 0.0 and out.max() <= 1.0
    return out


@pytest.mark.parametrize("size", [(32, 32), (33, 37)])
def test_unet_output_has_input_size(size):
    model = build_unet((*size, 3), base_filters=4)
    assert tuple(model.output.shape) == (None, *size, 1)
    _check_probabilities(model, _images((2, *size, 3)))


def test_unet_size_free_input_handles_odd_sizes():
    model = build_unet((None, None, 3), base_filters=4)
    for size in ((33, 37), (48, 16)):
        out = keras.ops.convert_to_numpy(model(_images((1, *size, 3))))
        assert out.shape == (1, *size, 1) and out.dtype == np.float32
        assert np.all((out >= 0) & (out <= 1))


def test_unet_structure_follows_the_paper():
    model = build_unet((64, 64, 3), base_filters=8, depth=4)
    names = [layer.name for layer in model.layers]
    assert sum(n.endswith("_pool") for n in names) == 4
    assert sum(n.endswith("_up") for n in names) == 4
    assert sum(n.endswith("_concat") for n in names) == 4
    assert model.get_layer("bottleneck_conv2").filters == 8 * 2**4
    assert model.get_layer("dec1_conv2").filters == 8
    assert model.get_layer("mask_logits").kernel_size == (1, 1)
    # No padding layers when the size is already a multiple of 2**depth.
    assert "pad" not in names
    plain = build_unet((64, 64, 3), base_filters=8, batch_norm=False)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)


def test_unet_trains_and_round_trips(tmp_path):
    model = build_unet((33, 37, 3), base_filters=4)
    images = _images((2, 33, 37, 3))
    masks = (np.random.default_rng(1).uniform(size=(2, 33, 37, 1)) > 0.5).astype("float32")
    harness.check_training_step(model, images, masks, loss="binary_crossentropy")
    harness.check_save_load(model, images, tmp_path)  # safe mode, no custom_objects


def test_unet_mixed_precision_outputs_float32():
    images = _images((1, 33, 32, 3))
    before = keras.config.dtype_policy().name
    for policy in harness.MIXED_POLICIES:
        model = build_unet((33, 32, 3), base_filters=4, dtype=policy)
        assert keras.config.dtype_policy().name == before  # plumbed, not global
        assert model.get_layer("enc1_conv1").compute_dtype == policy.split("_")[1]
        out = model(images)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(out)))


def test_unet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="input_shape"):
        build_unet((32, 32, 1))
    with pytest.raises(ValueError, match="base_filters"):
        build_unet((32, 32, 3), base_filters=0)


def test_pad_and_crop_layers():
    x = keras.ops.ones((1, 33, 37, 2))
    padded = PadToMultiple(16)(x)
    assert tuple(padded.shape) == (1, 48, 48, 2)
    assert float(keras.ops.sum(padded)) == 33 * 37 * 2  # zeros added, nothing moved
    assert PadToMultiple(16).compute_output_shape((None, None, 20, 3)) == (None, None, 32, 3)
    cropped = CropToReference()([padded, x])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(cropped), keras.ops.convert_to_numpy(x))


@pytest.mark.slow  # ~20 s each on a 2-core CPU (full-size backbones)
@pytest.mark.parametrize("backbone", sorted(ENCODER_SKIPS))
def test_unet_encoder(backbone, tmp_path):
    model = build_unet_encoder(backbone, (None, None, 3), decoder_filters=(8, 8, 8, 8, 8))
    images = _images((1, 33, 37, 3))
    out = keras.ops.convert_to_numpy(model(images))
    assert out.shape == (1, 33, 37, 1) and np.all((out >= 0) & (out <= 1))
    harness.check_save_load(model, images, tmp_path)


def test_unet_encoder_unknown_backbone():
    with pytest.raises(ValueError, match="DenseNet121"):
        build_unet_encoder("DenseNet121")
