"""Per-backbone input scaling, as keras.applications expects it.

Models take raw 0..255 RGB and scale inside the graph (so exported models and callers never have
to know). The modes are those of `keras.applications.imagenet_utils.preprocess_input`:

- "tf":    x / 127.5 - 1                                  (Inception, Xception, MobileNetV2, NASNet)
- "torch": (x / 255 - mean) / std, ImageNet mean and std   (DenseNet)
- "caffe": RGB -> BGR, minus the ImageNet BGR means          (ResNet50/152, VGG16)
- "raw":   unchanged; the backbone scales itself           (MobileNetV3 and EfficientNet)
"""

from __future__ import annotations

import keras
from keras import ops

SCALING_MODES = ("tf", "torch", "caffe", "raw")

_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def scale_image(x, mode: str):
    """Scales a float tensor of raw RGB (0..255), channels last, for a backbone."""
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "torch":
        mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=x.dtype)
        std = ops.convert_to_tensor(_TORCH_STD, dtype=x.dtype)
        return (x / 255.0 - mean) / std
    if mode == "caffe":
        mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=x.dtype)
        return ops.flip(x, axis=-1) - mean
    if mode == "raw":
        return x
    raise ValueError(f"Unknown scaling mode. Expected one of {SCALING_MODES}. Received: mode={mode!r}")


@keras.saving.register_keras_serializable(package="skinkeras")
class InputScaling(keras.layers.Layer):
    """Scales raw 0..255 RGB for a backbone inside the model (see `scale_image` for the modes).

    Example:
        >>> layer = InputScaling("tf")
        >>> float(layer(keras.ops.full((1, 2, 2, 3), 255.0))[0, 0, 0, 0])
        1.0
    """

    def __init__(self, mode: str = "tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in SCALING_MODES:
            raise ValueError(
                f"Unknown scaling mode. Expected one of {SCALING_MODES}. Received: mode={mode!r}"
            )
        self.mode = mode

    def call(self, inputs):
        return scale_image(ops.cast(inputs, self.compute_dtype), self.mode)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
