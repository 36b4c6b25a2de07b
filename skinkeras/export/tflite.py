"""TFLite export for phones: float32, float16, dynamic-range and full-integer int8 models.

The converter gets a SavedModel with a fixed-shape, TFLite-friendly signature (strings and dynamic
resizing are not TFLite builtins, so the app does those):

    image     float32[1, S, S, 3]   raw RGB 0..255, already resized to S x S (metadata_encoding.json)
    metadata  float32[1, F]         the encoded metadata vector (metadata models only)
    -> probabilities float32[1, C]

and converts it with builtin ops only (`TFLITE_BUILTINS`; int8: `TFLITE_BUILTINS_INT8`, so any op
without an int8 kernel fails the conversion instead of silently staying float). Full-integer int8
is calibrated on a representative sample of the run's *training* split, through the evaluation
pipeline. Inputs and outputs stay float32 so one app code path serves every variant.

Models run with the LiteRT interpreter (`ai_edge_litert.interpreter`), as on a phone.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
MODEL_FILE = "model.tflite"
DEFAULT_CALIBRATION_SAMPLES = 200


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


def convert(model, spec, quantize: str = "float32", *, representative=None) -> bytes:
    """The `.tflite` flatbuffer of `model` with `quantize` in QUANTIZATIONS.

    `representative`: for int8, a callable returning an iterable of input dicts
    (`{"image": float32[1, S, S, 3], "metadata": float32[1, F]}`), see `representative_dataset`.
    """
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise SkinkerasError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}. Received: {quantize!r}")
    if quantize == "int8" and representative is None:
        raise SkinkerasError("int8 quantization needs a representative dataset (the run's training images)")
    with tempfile.TemporaryDirectory(prefix="skinkeras_tflite_") as tmp:
        saved = Path(tmp) / "saved_model"
        tflite_archive(model, spec).write_out(str(saved), verbose=False)
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
        try:
            return converter.convert()
        except Exception as error:  # the converter raises ConverterError and friends
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise SkinkerasError(f"TFLite conversion ({quantize}) failed with builtin ops only: {first}") from error


def representative_dataset(run_dir, spec, data_root, *, samples: int = DEFAULT_CALIBRATION_SAMPLES, seed: int = 0):
    """A callable for `converter.representative_dataset`: `samples` images of the run's training
    split (a seeded random sample) as the evaluation pipeline prepares them."""
    import numpy as np

    from skinkeras.export.verify import held_out_table, iterate_samples

    table = held_out_table(run_dir, data_root, "train", limit=samples, seed=seed)
    if len(table) == 0:
        raise SkinkerasError(f"no training images of {run_dir} under {data_root} to calibrate int8 with")

    def generate():
        for _, image, metadata in iterate_samples(table, spec):
            item = {"image": image[None].astype(np.float32)}
            if spec.metadata is not None:
                item["metadata"] = metadata[None].astype(np.float32)
            yield item

    return generate


def export_tflite(model, spec, out_dir, quantize: str = "float32", *, representative=None,
                  force: bool = False, info: dict | None = None) -> Path:
    """Writes `out_dir/model.tflite`, labels.txt, metadata_encoding.json and export.json atomically."""
    from skinkeras.export.serving import finish_out_dir, prepare_out_dir, write_sidecar_files

    partial = prepare_out_dir(out_dir, force=force)
    flatbuffer = convert(model, spec, quantize, representative=representative)
    partial.mkdir(parents=True)
    (partial / MODEL_FILE).write_bytes(flatbuffer)
    write_sidecar_files(partial, spec, dict(info or {}, format="tflite", quantize=quantize))
    return finish_out_dir(partial, out_dir)


class LiteRTModel:
    """A `.tflite` model run with the LiteRT interpreter: `predict(image, metadata) -> float32[C]`.

    `image`: float32 `[S, S, 3]` raw 0..255 (resized); `metadata`: float32 `[F]` or None.
    """

    def __init__(self, path, *, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        path = Path(path)
        if not path.is_file():
            raise SkinkerasError(f"no TFLite model at {path}")
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        except ValueError as error:
            raise SkinkerasError(f"cannot load TFLite model {path}: {error}") from None
        self.runner = self.interpreter.get_signature_runner("serve")
        self.input_names = set(self.runner.get_input_details())

    def predict(self, image, metadata=None):
        import numpy as np

        inputs = {"image": np.asarray(image, np.float32)[None]}
        if "metadata" in self.input_names:
            if metadata is None:
                raise SkinkerasError("this TFLite model needs a metadata vector")
            inputs["metadata"] = np.asarray(metadata, np.float32)[None]
        return np.asarray(self.runner(**inputs)["probabilities"][0], dtype=np.float32)
