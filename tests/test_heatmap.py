"""Heatmaps: soft-attention maps and Grad-CAM (skinkeras.explain.heatmap), and the overlay PNG."""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from skinkeras.errors import SkinkerasError
from skinkeras.explain import heatmap
from skinkeras.explain.heatmap import explain, overlay_size, resolve_method, save_overlay
from skinkeras.models.classifier import ClassifierConfig, build_classifier
from skinkeras.models.soft_attention import SoftAttention
from tests import harness

METADATA_FEATURES = 5
HEAD_METHODS = {"soft_attention": "attention", "gap": "gradcam", "se": "gradcam", "cbam": "attention"}


@functools.lru_cache(maxsize=None)  # one build per head for the whole module; tests never modify it
def _calibrated_classifier(head: str, *, image_size: int = 64, metadata: str | None = "paper001", seed: int = 0,
                           dtype: str | None = None):
    """A tiny random MobileNetV3Small classifier whose BatchNorm statistics come from one batch.

    With weights=None the moving statistics are the initial ones and the features shrink to ~1e-12
    (attention maps come out constant); one training-mode pass with momentum 0 sets them from
    a batch, as a short training would.
    """
    keras.utils.set_random_seed(seed)
    config = ClassifierConfig("MobileNetV3Small", head, num_classes=3, image_size=image_size,
                              metadata=metadata, metadata_features=METADATA_FEATURES, weights=None)
    model = build_classifier(config, dtype=dtype)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            for inner in layer.layers:
                if isinstance(inner, keras.layers.BatchNormalization):
                    inner.momentum = 0.0
    model(harness.random_inputs(model, batch_size=8, seed=seed), training=True)
    return model


def _image(height=50, width=70, seed=1):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[: height // 2, : width // 3] = (200, 60, 40)  # some structure, not only noise
    return image


def _metadata():
    return np.linspace(-1.0, 1.0, METADATA_FEATURES).astype("float32")


@pytest.mark.parametrize("head", list(HEAD_METHODS))
def test_explain_each_head(head):
    model = _calibrated_classifier(head)
    image = _image()
    assert resolve_method(model) == HEAD_METHODS[head]
    heat = explain(model, image, _metadata())
    assert heat.shape == (50, 70)
    assert heat.dtype == np.float32
    assert np.all(np.isfinite(heat))
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    # A real (non-constant) map reaches both ends; Grad-CAM of the top class of a random model
    # may be all negative (-> zeros), so some class must give one.
    maps = [heat] if HEAD_METHODS[head] == "attention" else [
        explain(model, image, _metadata(), class_index=c) for c in range(3)]
    assert any(m.max() == 1.0 and m.min() == 0.0 for m in maps)
    if head == "soft_attention":  # Grad-CAM works on attention models too, when asked for
        gradcam = explain(model, image, _metadata(), method="gradcam")
        assert gradcam.shape == (50, 70) and np.all(np.isfinite(gradcam))


@pytest.mark.slow  # float16 on CPU: ~20 s under load
def test_explain_mixed_precision_model():
    # Trained-on-GPU runs are saved with a mixed policy: float16 features, float32 maps.
    image = _image(40, 30)
    for head in ("soft_attention", "gap"):
        model = _calibrated_classifier(head, dtype="mixed_float16")
        maps = [explain(model, image, _metadata(), class_index=c) for c in range(3)] if head == "gap" else [
            explain(model, image)]
        for heat in maps:
            assert heat.shape == (40, 30) and heat.dtype == np.float32
            assert np.all(np.isfinite(heat)) and heat.min() >= 0.0 and heat.max() <= 1.0
        assert any(m.max() == 1.0 for m in maps)


def test_attention_map_is_the_layers_own_map(tmp_path):
    model = _calibrated_classifier("soft_attention")
    image = _image(45, 80)
    before = model(harness.random_inputs(model, batch_size=1, seed=3), training=False)

    # Oracle: the backbone's features, the attention formula in TF ops with the layer's weights.
    layer = next(lay for lay in model.layers if isinstance(lay, SoftAttention))
    backbone = next(lay for lay in model.layers if isinstance(lay, keras.Model))
    resized = tf.image.resize(image[None].astype("float32"), (64, 64), antialias=True)
    features = backbone(model.get_layer("input_scaling")(resized), training=False)
    kernel, bias = layer.conv.kernel, layer.conv.bias
    logits = tf.nn.relu(tf.nn.conv2d(features, kernel, strides=1, padding="SAME") + bias)
    h, w = logits.shape[1:3]
    alpha = tf.nn.softmax(tf.reshape(logits, (h * w, layer.num_heads)), axis=0)
    own = tf.reshape(tf.reduce_sum(alpha, axis=-1), (h, w)).numpy()
    assert h == 2 and w == 2 and own.max() - own.min() > 1e-3  # a map worth comparing
    big = tf.image.resize(own[None, :, :, None], (45, 80), method="bilinear").numpy()[0, :, :, 0]
    expected = (big - big.min()) / (big.max() - big.min())

    heat = explain(model, image, method="attention")  # no metadata needed for the map
    np.testing.assert_allclose(heat, expected, atol=1e-4)
    # The model itself is untouched.
    assert layer.return_attention is False
    after = model(harness.random_inputs(model, batch_size=1, seed=3), training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(before), keras.ops.convert_to_numpy(after))

    # Same map from the model loaded back in safe mode (what export / predict use).
    from skinkeras.saving import load_model

    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(explain(loaded, image), heat, atol=1e-5)


def test_gradcam_of_gap_head_is_the_class_activation_map():
    # With GAP -> (concat metadata) -> Dense, d logit_c / d A_k(i, j) = W[k, c] / (h w): Grad-CAM is
    # CAM (Zhou et al. 2016), computable from the Dense kernel alone.
    model = _calibrated_classifier("gap")
    image = _image(60, 40)
    backbone = next(lay for lay in model.layers if isinstance(lay, keras.Model))
    resized = tf.image.resize(image[None].astype("float32"), (64, 64), antialias=True)
    features = keras.ops.convert_to_numpy(backbone(model.get_layer("input_scaling")(resized)))[0]
    kernel = keras.ops.convert_to_numpy(model.get_layer("predictions").kernel)
    channels = features.shape[-1]
    for class_index in range(3):
        cam = np.maximum(features @ kernel[:channels, class_index], 0.0)
        big = tf.image.resize(cam[None, :, :, None], (60, 40)).numpy()[0, :, :, 0]
        expected = (big - big.min()) / (big.max() - big.min()) if big.max() > big.min() else np.zeros_like(big)
        heat = explain(model, image, _metadata(), class_index=class_index)
        np.testing.assert_allclose(heat, expected, atol=1e-4)


def _colour_model():
    """Conv2D(1x1, relu) -> GAP -> Dense softmax: filter 0 sees red, filter 1 sees blue; class 0
    is filter 0, class 1 is filter 1."""
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Conv2D(2, 1, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    model.get_layer("conv").set_weights([
        np.array([[1.0, -1.0], [-1.0, -1.0], [-1.0, 1.0]], "float32").reshape(1, 1, 3, 2),
        np.zeros(2, "float32"),
    ])
    model.get_layer("predictions").set_weights([np.eye(2, dtype="float32") * 0.05, np.zeros(2, "float32")])
    return model


def _quadrant_means(heat):
    h, w = heat.shape
    return {
        "top_left": heat[: h // 2, : w // 2].mean(),
        "top_right": heat[: h // 2, w // 2:].mean(),
        "bottom_left": heat[h // 2:, : w // 2].mean(),
        "bottom_right": heat[h // 2:, w // 2:].mean(),
    }


def test_gradcam_peaks_where_the_class_evidence_is():
    model = _colour_model()
    image = np.full((40, 60, 3), 90, np.uint8)  # grey: no filter responds
    image[:20, :30] = (255, 0, 0)  # red quadrant, top left (larger: class 0 wins)
    image[26:, 36:] = (0, 0, 255)  # blue patch, bottom right
    assert resolve_method(model) == "gradcam"
    for class_index, quadrant in ((None, "top_left"), (0, "top_left"), (1, "bottom_right")):
        heat = explain(model, image, class_index=class_index)
        assert heat.shape == (40, 60)
        means = _quadrant_means(heat)
        assert max(means, key=means.get) == quadrant, (class_index, means)
        others = [v for k, v in means.items() if k != quadrant]
        assert means[quadrant] > 0.4 and max(others) < 0.1, (class_index, means)
        row, col = np.unravel_index(np.argmax(heat), heat.shape)
        assert (row < 20) == quadrant.startswith("top") and (col < 30) == quadrant.endswith("left")


def test_constant_maps_give_zeros_not_nan():
    model = _colour_model()
    grey = np.full((33, 37, 3), 90, np.uint8)  # no filter responds: Grad-CAM is 0 everywhere
    heat = explain(model, grey)
    assert heat.shape == (33, 37) and np.all(heat == 0.0)
    np.testing.assert_array_equal(heatmap.normalise(np.full((4, 5), 2.5)), np.zeros((4, 5)))
    np.testing.assert_allclose(heatmap.normalise(np.array([[1e-12, 3e-12]])), [[0.0, 1.0]])  # tiny, not constant


def test_explain_rejects_bad_input():
    gap = _calibrated_classifier("gap")
    with pytest.raises(SkinkerasError, match="metadata"):
        explain(gap, _image())  # Grad-CAM through a metadata model needs the vector
    with pytest.raises(SkinkerasError, match="5 features"):
        explain(gap, _image(), np.zeros(4))
    with pytest.raises(SkinkerasError, match="no SoftAttention"):
        explain(gap, _image(), _metadata(), method="attention")
    with pytest.raises(SkinkerasError, match="unknown heatmap method"):
        explain(gap, _image(), _metadata(), method="lime")
    with pytest.raises(SkinkerasError, match="shape"):
        explain(gap, np.zeros((4, 5, 2), np.uint8), _metadata())
    with pytest.raises(SkinkerasError, match="class_index"):
        explain(gap, _image(), _metadata(), class_index=3)


def test_save_overlay_writes_the_image_and_the_heat(tmp_path):
    image = np.zeros((50, 70, 3), np.uint8)
    image[:] = (200, 150, 120)
    heat = np.zeros((50, 70), np.float32)
    heat[:, :35] = 1.0  # hot left half, cold right half
    path = save_overlay(tmp_path / "deep" / "er" / "heat.png", image, heat, title="soft attention")
    assert path == tmp_path / "deep" / "er" / "heat.png"
    with Image.open(path) as png:
        assert png.format == "PNG"
        pixels = np.asarray(png.convert("RGB")).astype(int)
    assert pixels.shape[:2] == overlay_size(50, 70) == (320 + 48, 12 + 448 + 16 + 448 + 16 + 18 + 64)

    top = heatmap._TOP
    panel_h, panel_w = heatmap._panel_size(50, 70)
    middle = top + panel_h // 2
    left_panel = pixels[top + 5: top + panel_h - 5, heatmap._LEFT + 5: heatmap._LEFT + panel_w - 5]
    np.testing.assert_allclose(left_panel.reshape(-1, 3).mean(axis=0), (200, 150, 120), atol=3)
    right_x = heatmap._LEFT + panel_w + heatmap._GAP
    hot = pixels[middle, right_x + panel_w // 4]
    cold = pixels[middle, right_x + 3 * panel_w // 4]
    assert hot[0] > cold[0] + 20 and cold[2] > hot[2] + 20, (hot, cold)  # turbo: red high, blue low
    assert not np.allclose(hot, (200, 150, 120), atol=10)  # the heat shows


def test_save_overlay_sizes_and_errors(tmp_path):
    assert overlay_size(3000, 2000)[0] == 720 + 48  # large photos are reduced
    assert overlay_size(450, 600) == (450 + 48, 12 + 600 + 16 + 600 + 16 + 18 + 64)
    with pytest.raises(SkinkerasError, match="size"):
        save_overlay(tmp_path / "x.png", np.zeros((10, 12, 3), np.uint8), np.zeros((12, 10)))
    with pytest.raises(SkinkerasError, match="alpha"):
        save_overlay(tmp_path / "x.png", np.zeros((10, 12, 3), np.uint8), np.zeros((10, 12)), alpha=2)
    assert not (tmp_path / "x.png").exists()
