"""Heatmaps of where a classifier looked: its soft-attention or CBAM map, or Grad-CAM.

- "attention" (soft-attention heads, paper 001): the summed attention map A of the model's
  `SoftAttention` layer (Datta et al. 2021), read by re-running a copy of that layer with
  `return_attention=True` on the same weights and the same feature map. The loaded model is not
  modified.
- "attention" (CBAM heads, paper 003: the flat model and the "cbam" head; the hierarchical model):
  the spatial attention map Ms of the model's `CBAM` layer (`CBAM.gates`, the map the layer
  applies, in 0..1). The hierarchical model has one CBAM per decision level; `explain` shows the
  one of the last level on the predicted class's path (level 2 for nv/mel, level 3 otherwise),
  `cbam_attention_maps` returns all of them.
- "gradcam" (every other head): Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations
  from Deep Networks via Gradient-based Localization") on the feature map the head consumes (the
  backbone's output): channel weights are the spatial means of d(class score)/d(features), the map
  is ReLU(sum_k weight_k * feature_k). The class score is the pre-softmax logit when the model ends
  in a softmax Dense layer (as the paper does; gradients of a saturated softmax vanish), otherwise
  the log-probability.

Both maps are computed at the model's input size S on the whole image resized to S x S (bilinear,
as the evaluation pipeline does), then upsampled (bilinear) to the image's own size and scaled to
0..1. `save_overlay` draws the image and the blended heat side by side with a colour bar.

Example:
    >>> heat = explain(model, image)  # doctest: +SKIP
    >>> save_overlay("out/lesion_heat.png", image, heat)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError

METHODS = ("auto", "attention", "gradcam")

# Overlay figure layout, in pixels at _DPI (see `overlay_size`).
_DPI = 100
_PANEL_MIN, _PANEL_MAX = 320, 720
_TOP, _BOTTOM, _LEFT, _GAP, _BAR, _RIGHT = 36, 12, 12, 16, 18, 64


def explain(model, image_uint8, metadata=None, *, method: str = "auto", class_index: int | None = None) -> np.ndarray:
    """Heatmap of `model` on one image: float32 [H, W] in 0..1 at the image's own size.

    Args:
        model: a skinkeras classifier (`build_classifier` or a loaded run model); inputs a dict
            `{"image": (S, S, 3) raw 0..255, optional "metadata": (F,)}` or a single image input.
        image_uint8: RGB image, uint8 (or float in 0..255) `[H, W, 3]`, any size; grey `[H, W]`
            and RGBA are accepted.
        metadata: the encoded metadata vector `(F,)` (`MetadataEncoding.encode_numpy`), needed by
            Grad-CAM on metadata models (the attention map does not depend on it).
        method: "auto" ("attention" when the model has a SoftAttention or CBAM layer, else "gradcam"),
            "attention" or "gradcam".
        class_index: Grad-CAM's class; None = the top-scoring class.

    A constant map (e.g. Grad-CAM with no positive evidence) comes back as zeros, never NaN.
    """
    image = _as_rgb(image_uint8)
    height, width = image.shape[:2]
    method = resolve_method(model, method)
    batch = _resized_batch(model, image)
    if method == "attention":
        small = attention_map(model, batch)
    else:
        small = gradcam_map(model, _model_inputs(model, batch, metadata), class_index=class_index)
    return _upsample_and_normalise(small, (height, width))


def resolve_method(model, method: str = "auto") -> str:
    """"attention" or "gradcam" for `method` on `model` ("auto" picks by the model's head)."""
    if method not in METHODS:
        raise SkinkerasError(f"unknown heatmap method {method!r}; expected one of {', '.join(METHODS)}")
    has_attention = _soft_attention_layer(model) is not None or bool(_cbam_layers(model))
    if method == "auto":
        return "attention" if has_attention else "gradcam"
    if method == "attention" and not has_attention:
        raise SkinkerasError(
            f"model {model.name!r} has no SoftAttention or CBAM layer, so no attention map; use method='gradcam'")
    return method


def attention_map(model, image_batch) -> np.ndarray:
    """The summed soft-attention map A, or the CBAM spatial map Ms, `[h, w]` (feature-map
    resolution) for `image_batch` `[1, S, S, 3]` (raw 0..255, already at the model's input size)."""
    import keras

    from skinkeras.models.soft_attention import SoftAttention

    layer = _soft_attention_layer(model)
    if layer is None and _cbam_layers(model):
        return _chosen_cbam_map(model, image_batch)
    if layer is None:
        raise SkinkerasError(f"model {model.name!r} has no SoftAttention or CBAM layer")
    try:  # the feature map depends on the image alone
        features = keras.Model(_image_input(model), layer.input)(image_batch, training=False)
    except ValueError:
        features = keras.Model(model.input, layer.input)(
            _model_inputs(model, image_batch, None, required=False), training=False)
    # A fresh copy returning the map, with the trained weights; the model itself stays untouched.
    copy = SoftAttention.from_config({**layer.get_config(), "return_attention": True})
    copy.build(tuple(layer.input.shape))
    copy.set_weights(layer.get_weights())
    _, attention = copy(features, training=False)
    return keras.ops.convert_to_numpy(attention)[0, :, :, 0].astype(np.float32)


def cbam_attention_maps(model, image_batch) -> dict[str, np.ndarray]:
    """The spatial attention map Ms `[h, w]` (float32, 0..1, feature-map resolution) of every
    `CBAM` layer of `model`, by layer name in model order (the hierarchical model: `level1_cbam`,
    `level2_cbam`, ...), for `image_batch` `[1, S, S, 3]` (raw 0..255, at the model's input size).
    The model is not modified."""
    import keras

    layers = _cbam_layers(model)
    if not layers:
        raise SkinkerasError(f"model {model.name!r} has no CBAM layer")
    inputs = [layer.input for layer in layers]
    try:  # the feature maps depend on the image alone
        features = keras.Model(_image_input(model), inputs)(image_batch, training=False)
    except ValueError:
        features = keras.Model(model.input, inputs)(
            _model_inputs(model, image_batch, None, required=False), training=False)
    maps = {}
    for layer, feature_map in zip(layers, keras.tree.flatten(features)):  # one output: no list
        _, spatial = layer.gates(feature_map)
        maps[layer.name] = keras.ops.convert_to_numpy(keras.ops.cast(spatial, "float32"))[0, :, :, 0]
    return maps


def gradcam_map(model, inputs, *, class_index: int | None = None) -> np.ndarray:
    """Grad-CAM `[h, w]` on the feature map the model's head consumes (its backbone's output).

    `inputs` is one example as the model takes it (batch of 1, image at the model's size).
    """
    import keras
    import tensorflow as tf

    features_tensor = _head_feature_tensor(model)
    output_layer = _producer(model.output)
    use_logits = isinstance(output_layer, keras.layers.Dense) and (
        output_layer.get_config().get("activation") == "softmax")
    target = output_layer.input if use_logits else model.output
    grad_model = keras.Model(model.input, [features_tensor, target])
    num_classes = int(model.output.shape[-1])
    if class_index is not None and not 0 <= int(class_index) < num_classes:
        raise SkinkerasError(f"class_index must be in [0, {num_classes}). Received: {class_index}")
    with tf.GradientTape() as tape:
        features, values = grad_model(inputs, training=False)
        values = tf.cast(values, tf.float32)
        if use_logits:
            scores = tf.matmul(values, tf.cast(output_layer.kernel, tf.float32))
            if output_layer.use_bias:
                scores = scores + tf.cast(output_layer.bias, tf.float32)
        else:
            scores = tf.math.log(tf.maximum(values, 1e-12))
        chosen = int(tf.argmax(scores[0])) if class_index is None else int(class_index)
        score = scores[0, chosen]
    gradients = tape.gradient(score, features)
    features = tf.cast(features, tf.float32)[0]
    if gradients is None:  # the class score does not depend on the features at all
        return np.zeros(features.shape[:2], np.float32)
    weights = tf.reduce_mean(tf.cast(gradients, tf.float32)[0], axis=(0, 1))  # one per channel
    cam = tf.nn.relu(tf.reduce_sum(features * weights, axis=-1))
    return cam.numpy().astype(np.float32)


def overlay_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) in pixels of the PNG `save_overlay` writes for an image of that size.

    Each panel shows the image at a display height of `height` clamped to 320..720 px (small
    crops are enlarged to be seen, large photos reduced), keeping the aspect ratio.
    """
    panel_h, panel_w = _panel_size(height, width)
    return (_TOP + panel_h + _BOTTOM,
            _LEFT + panel_w + _GAP + panel_w + _GAP + _BAR + _RIGHT)


def save_overlay(path, image_uint8, heat, *, alpha: float = 0.45, title: str | None = None,
                 cmap: str = "turbo") -> Path:
    """Writes a PNG: the image on the left, the image blended with the colour-mapped heat on the
    right, and a colour bar from low to high; returns the path. Parent folders are created.

    Args:
        image_uint8: the RGB image `[H, W, 3]` (as given to `explain`).
        heat: `[H, W]` in 0..1 (the output of `explain`).
        alpha: weight of the heat colours in the blend (0 = image only, 1 = heat only).
        title: caption of the overlay panel (default "heatmap").
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    image = _as_rgb(image_uint8)
    heat = np.asarray(heat, dtype=np.float32)
    if heat.shape != image.shape[:2]:
        raise SkinkerasError(f"heat must have the image's size {image.shape[:2]}. Received shape {heat.shape}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise SkinkerasError(f"alpha must be in [0, 1]. Received: alpha={alpha}")
    heat = np.clip(np.nan_to_num(heat, nan=0.0), 0.0, 1.0)
    colour_map = colormaps[cmap]
    rgb = image.astype(np.float32) / 255.0
    blended = (1.0 - alpha) * rgb + alpha * colour_map(heat)[..., :3]

    height, width = image.shape[:2]
    fig_h, fig_w = overlay_size(height, width)
    panel_h, panel_w = _panel_size(height, width)
    figure = Figure(figsize=(fig_w / _DPI, fig_h / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)

    def axes(left_px, width_px):
        # Figure fractions from pixel offsets; panels sit below the title band.
        return figure.add_axes([left_px / fig_w, _BOTTOM / fig_h, width_px / fig_w, panel_h / fig_h])

    left = axes(_LEFT, panel_w)
    right = axes(_LEFT + panel_w + _GAP, panel_w)
    bar = axes(_LEFT + 2 * panel_w + 2 * _GAP, _BAR)
    for ax, picture, caption in ((left, rgb, "image"), (right, blended, title or "heatmap")):
        ax.imshow(np.clip(picture, 0.0, 1.0), interpolation="antialiased", aspect="auto")
        ax.set_title(caption, fontsize=10)
        ax.set_axis_off()
    colour_bar = figure.colorbar(ScalarMappable(norm=Normalize(0.0, 1.0), cmap=colour_map), cax=bar)
    colour_bar.set_ticks([0.0, 1.0], labels=["low", "high"])
    colour_bar.ax.tick_params(labelsize=8)
    colour_bar.set_label("relative importance", fontsize=8)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI, format="png")
    return path


# ---- helpers ------------------------------------------------------------------------------------
def _as_rgb(image) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]  # alpha is not an input of any model
    if array.ndim != 3 or array.shape[-1] != 3 or min(array.shape[:2]) < 1:
        raise SkinkerasError(f"expected an RGB image [H, W, 3]. Received an array of shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    array = np.asarray(array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise SkinkerasError("the image holds NaN or infinite values")
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def _image_input(model):
    return model.input["image"] if isinstance(model.input, dict) else model.input


def _resized_batch(model, image: np.ndarray):
    """`[1, S, S, 3]` float32: the whole image resized to the model's input size, as evaluated."""
    from skinkeras.preprocessing.crops import resize

    size = tuple(_image_input(model).shape[1:3])
    if None in size:
        size = image.shape[:2]
    return np.asarray(resize(image[None].astype(np.float32), size), dtype=np.float32)


def _model_inputs(model, image_batch, metadata, *, required: bool = True):
    if not isinstance(model.input, dict):
        return image_batch
    inputs = {"image": image_batch}
    if "metadata" in model.input:
        width = int(model.input["metadata"].shape[-1])
        if metadata is None:
            if required:
                raise SkinkerasError(
                    f"model {model.name!r} takes metadata: pass its encoded vector of {width} features")
            metadata = np.zeros((width,), np.float32)  # for sub-models that ignore it
        vector = np.asarray(metadata, dtype=np.float32).reshape(-1)
        if vector.shape != (width,):
            raise SkinkerasError(f"metadata must have {width} features. Received shape {np.shape(metadata)}")
        inputs["metadata"] = vector[None]
    return inputs


def _soft_attention_layer(model):
    from skinkeras.models.soft_attention import SoftAttention

    for layer in model.layers:
        if isinstance(layer, SoftAttention):
            return layer
    return None


def _cbam_layers(model):
    from skinkeras.models.cbam import CBAM

    return [layer for layer in model.layers if isinstance(layer, CBAM)]


def _chosen_cbam_map(model, image_batch) -> np.ndarray:
    """The one CBAM map, or for a hierarchical model the map of the last level on the predicted
    class's path (its `level{depth}_cbam`)."""
    import keras

    from skinkeras.models.hierarchical import PROBABILITIES, decision_depths

    maps = cbam_attention_maps(model, image_batch)
    if len(maps) == 1:
        return next(iter(maps.values()))
    depths = decision_depths(model)
    if depths is not None and isinstance(model.output, dict) and PROBABILITIES in model.output:
        probabilities = model(_model_inputs(model, image_batch, None, required=False), training=False)[PROBABILITIES]
        depth = depths[int(np.argmax(keras.ops.convert_to_numpy(probabilities)[0]))]
        if f"level{depth}_cbam" in maps:
            return maps[f"level{depth}_cbam"]
    return list(maps.values())[-1]


def _producer(tensor):
    return tensor._keras_history[0]


def _head_feature_tensor(model):
    """The (outer-graph) feature map the head consumes: the output of the nested backbone model
    when there is one, else the last rank-4 tensor a layer takes (hand-built models: the
    convolution output before global pooling)."""
    import keras

    from_backbone, last_rank4 = None, None
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            inputs = keras.tree.flatten(layer.input)
        except (AttributeError, ValueError):  # a layer shared between several calls
            continue
        for tensor in inputs:
            if len(tensor.shape) != 4:
                continue
            if isinstance(_producer(tensor), keras.Model):
                from_backbone = tensor
            last_rank4 = tensor
    feature_map = from_backbone if from_backbone is not None else last_rank4
    if feature_map is None:
        raise SkinkerasError(f"model {model.name!r} has no spatial feature map for Grad-CAM")
    return feature_map


def _upsample_and_normalise(small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import tensorflow as tf

    small = np.nan_to_num(np.asarray(small, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    big = tf.image.resize(small[None, :, :, None], size, method="bilinear").numpy()[0, :, :, 0]
    return normalise(big)


def normalise(heat) -> np.ndarray:
    """Min-max scaling to 0..1 (float32); a constant (or empty) map gives zeros."""
    heat = np.nan_to_num(np.asarray(heat, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if heat.size == 0:
        return heat
    low, high = float(heat.min()), float(heat.max())
    span = high - low
    # Relative: Grad-CAM of an untrained model can be ~1e-12 everywhere and still a real map;
    # rounding noise on a constant map (upsampling) stays below this.
    if not span > 1e-6 * max(abs(high), abs(low)):
        return np.zeros_like(heat)
    return np.clip((heat - low) / span, 0.0, 1.0).astype(np.float32)


def _panel_size(height: int, width: int) -> tuple[int, int]:
    panel_h = int(min(max(int(height), _PANEL_MIN), _PANEL_MAX))
    panel_w = max(1, int(round(panel_h * int(width) / int(height))))
    return panel_h, panel_w
