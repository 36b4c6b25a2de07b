"""Verification of an export against the Keras model it came from, on real held-out images.

Both models see the same images of the run's held-out split (the test split by default): the
Keras `best.keras` model gets them prepared by `serving.preprocess_images` (the evaluation
pipeline's path), the serving SavedModel gets the raw uint8 pixels and the plain age / sex / site
values (so its in-graph resizing and metadata encoding are checked too), a `.tflite` model gets the
resized image and the encoded metadata vector, as an app would give them, through the LiteRT
interpreter. Reported: max |p_export - p_keras| over every image and class, top-1 agreement, the
balanced accuracy of both and its change. Pass criteria (module constants):

    SavedModel, TFLite float32   max |dp| <= 1e-4
    TFLite float16               max |dp| <= 1e-2, or top-1 agreement >= 99 %
    TFLite dynamic range         top-1 agreement >= 98 %
    TFLite int8                  top-1 agreement >= 98 %

Both sides use the run's decision rule (decision_rule.json): the Keras probabilities are adjusted
here, the SavedModel adjusts inside its graph, a .tflite model's softmax is adjusted here as its
app does (metadata_encoding.json).

And, for every kind, the Keras model's probabilities must vary across the images (std > 1e-6):
a model whose outputs do not depend on the image would agree with any export.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)

FLOAT32_MAX_ABS_DIFF = 1e-4
FLOAT16_MAX_ABS_DIFF = 1e-2
FLOAT16_MIN_AGREEMENT = 0.99
DYNAMIC_MIN_AGREEMENT = 0.98
INT8_MIN_AGREEMENT = 0.98
MIN_OUTPUT_STD = 1e-6  # below: the probabilities are the same for every image
_CHUNK = 32


def thresholds(kind: str) -> dict:
    """Pass criteria of an export kind ("saved_model" or a TFLite quantization)."""
    return {
        "saved_model": {"max_abs_diff": FLOAT32_MAX_ABS_DIFF},
        "float32": {"max_abs_diff": FLOAT32_MAX_ABS_DIFF},
        "float16": {"max_abs_diff": FLOAT16_MAX_ABS_DIFF, "or_top1_agreement": FLOAT16_MIN_AGREEMENT},
        "dynamic": {"top1_agreement": DYNAMIC_MIN_AGREEMENT},
        "int8": {"top1_agreement": INT8_MIN_AGREEMENT},
    }[kind]


def export_kind(path) -> tuple[str, Path]:
    """("saved_model", dir) or (quantization, model.tflite path) of an export path."""
    from skinkeras.export.litert import MODEL_FILE
    from skinkeras.export.serving import EXPORT_INFO_FILE

    path = Path(path)
    if (path / "saved_model.pb").exists():
        return "saved_model", path
    model_file = path / MODEL_FILE if path.is_dir() else path
    if model_file.suffix == ".tflite" and model_file.is_file():
        info_path = model_file.parent / EXPORT_INFO_FILE
        quantize = json.loads(info_path.read_text()).get("quantize") if info_path.exists() else None
        if quantize is None:
            name = model_file.parent.name
            quantize = name.split("_", 1)[1] if name.startswith("tflite_") else "float32"
        return quantize, model_file
    raise SkinkerasError(f"{path} is neither a SavedModel directory nor a .tflite model (or a folder with one)")


class SavedModelRunner:
    """The reloaded serving SavedModel (`serving_default`), fed raw images and plain metadata."""

    def __init__(self, directory):
        import tensorflow as tf

        self.serve = tf.saved_model.load(str(directory)).signatures["serving_default"]
        self.has_metadata = "age" in self.serve.structured_input_signature[1]

    def predict_raw(self, pixels, values):
        """Probabilities for a list of raw uint8 images (consecutive equal sizes go as one batch)."""
        import tensorflow as tf

        out, start = [], 0
        while start < len(pixels):
            end = start + 1
            while end < len(pixels) and pixels[end].shape == pixels[start].shape:
                end += 1
            inputs = {"images": tf.constant(np.stack(pixels[start:end]))}
            if self.has_metadata:
                age, sex, site = zip(*values[start:end])
                inputs.update(age=tf.constant(age, tf.float32), sex=tf.constant(sex), site=tf.constant(site))
            out.append(self.serve(**inputs)["probabilities"].numpy())
            start = end
        return np.concatenate(out)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (sound near 100 %, unlike the normal one)."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def compare_predictions(kind, keras_probs, export_probs, labels, class_names) -> dict:
    """The verification figures and verdict for probabilities of the same images."""
    from skinkeras.evaluation.metrics import compute_metrics

    keras_probs = np.asarray(keras_probs, np.float64)
    export_probs = np.asarray(export_probs, np.float64)
    labels = np.asarray(labels)
    max_abs = float(np.max(np.abs(keras_probs - export_probs))) if len(labels) else float("nan")
    agreeing = int(np.sum(keras_probs.argmax(1) == export_probs.argmax(1)))
    agreement = agreeing / len(labels) if len(labels) else float("nan")
    bacc_keras = compute_metrics(labels, keras_probs, class_names, n_resamples=0)["balanced_accuracy"]
    bacc_export = compute_metrics(labels, export_probs, class_names, n_resamples=0)["balanced_accuracy"]
    limits = thresholds(kind)
    failures = []
    # An agreement on a model whose output ignores the image proves nothing about the export.
    spread = float(keras_probs.std(axis=0).max()) if len(labels) > 1 else float("nan")
    if len(labels) > 1 and not spread > MIN_OUTPUT_STD:
        failures.append(f"the model's outputs do not depend on the image (largest std across the {len(labels)} "
                        f"images {spread:.2g}): an untrained or dead model, nothing to verify")
    if "max_abs_diff" in limits and not max_abs <= limits["max_abs_diff"]:
        if not ("or_top1_agreement" in limits and agreement >= limits["or_top1_agreement"]):
            failures.append(f"max |dp| {max_abs:.3g} > {limits['max_abs_diff']:g}"
                            + (f" and top-1 agreement {agreement:.2%} < {limits['or_top1_agreement']:.0%}"
                               if "or_top1_agreement" in limits else ""))
    if "top1_agreement" in limits and not agreement >= limits["top1_agreement"]:
        failures.append(f"top-1 agreement {agreement:.2%} < {limits['top1_agreement']:.0%}")
    return {
        "kind": kind,
        "n": int(len(labels)),
        "max_abs_diff": max_abs,
        "top1_agreement": agreement,
        # How sure the agreement is: borderline images flip either way, so 1,200 images pin it to
        # about +-0.8 points near 98 %. The verdict uses the measured value.
        "top1_agreement_ci95": list(wilson_interval(agreeing, len(labels))),
        "balanced_accuracy_keras": bacc_keras,
        "balanced_accuracy_export": bacc_export,
        "balanced_accuracy_change": (None if bacc_keras is None or bacc_export is None
                                     else bacc_export - bacc_keras),
        "output_std": spread,
        "thresholds": limits,
        "passed": not failures,
        "failures": failures,
    }


def verify_export(export_path, run_dir, *, data_root=None, split: str = "test", limit: int | None = None,
                  model=None, write: bool = True) -> dict:
    """Runs the export and the run's Keras model on the run's `split` images and compares them.

    Returns the figures of `compare_predictions` (plus paths); writes them as verification.json
    beside the export when `write`. `model`: the run's Keras model if already loaded.
    """
    from skinkeras.engine.run_directory import load_run_model
    from skinkeras.export.litert import LiteRTModel
    from skinkeras.export.samples import held_out_table, iterate_samples
    from skinkeras.export.serving import VERIFICATION_FILE, load_run_spec

    kind, path = export_kind(export_path)
    spec = load_run_spec(run_dir)
    model = model or load_run_model(run_dir)
    table = held_out_table(run_dir, data_root, split, limit=limit)
    if kind == "saved_model":
        runner = SavedModelRunner(path)
    else:
        runner = LiteRTModel(path)
    labels, keras_probs, export_probs = [], [], []
    chunk = []

    def decide(probabilities):
        probabilities = np.asarray(probabilities, np.float32)
        return probabilities if spec.decision_rule is None else spec.decision_rule.apply(probabilities).astype(np.float32)

    def flush():
        images = np.stack([c[1] for c in chunk])
        inputs = {"image": images}
        if spec.metadata is not None:
            inputs["metadata"] = np.stack([c[2] for c in chunk])
        keras_probs.append(decide(model.predict_on_batch(inputs)))
        if kind == "saved_model":
            export_probs.append(runner.predict_raw([c[3] for c in chunk], [c[4] for c in chunk]))
        else:
            export_probs.append(decide(np.stack([runner.predict(c[1], c[2]) for c in chunk])))
        labels.extend(c[0] for c in chunk)
        chunk.clear()

    for item in iterate_samples(table, spec, raw=True):
        chunk.append(item)
        if len(chunk) == _CHUNK:
            flush()
    if chunk:
        flush()
    if not labels:
        raise SkinkerasError(f"no readable {split} images of {run_dir} to verify with")
    result = compare_predictions(kind, np.concatenate(keras_probs), np.concatenate(export_probs),
                                 labels, spec.class_names)
    result.update(export=str(path), run=str(run_dir), split=split)
    if write:
        target = (path if path.is_dir() else path.parent) / VERIFICATION_FILE
        target.write_text(json.dumps(result, indent=2) + "\n")
        result["written_to"] = str(target)
    return result


def summary_line(result: dict) -> str:
    """One line for the terminal."""
    def fmt(value):
        return "n/a" if value is None else f"{value:.4f}"

    verdict = "PASSED" if result["passed"] else "FAILED: " + "; ".join(result["failures"])
    interval = result.get("top1_agreement_ci95")
    ci = " [{:.1%}, {:.1%}]".format(*interval) if interval else ""
    return (f"verification ({result['kind']}, {result['n']} {result.get('split', '')} images): "
            f"max |dp| {result['max_abs_diff']:.3g}, top-1 agreement {result['top1_agreement']:.2%}{ci}, "
            f"balanced accuracy {fmt(result['balanced_accuracy_keras'])} -> "
            f"{fmt(result['balanced_accuracy_export'])}: {verdict}")
