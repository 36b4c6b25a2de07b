"""What an exported model needs from its run, and the serving SavedModel built from it.

`RunSpec` gathers, from a run directory, everything an export or a prediction needs besides the
weights: class names, input size, the metadata encoding and whether images were colour-normalised.
`preprocess_images` is the evaluation pipeline's image path (`make_classification_dataset` with
`training=False, crop="resize"`: optional Shades of Gray, then a bilinear resize antialiased when
shrinking) in TF ops, so the same function runs eagerly for the Keras model and inside exported
graphs; that is what makes the exported probabilities equal the evaluated ones.

`export_serving_saved_model` writes a SavedModel whose `serve` endpoint (also `serving_default`)
takes what an app has:

    images  uint8[None, None, None, 3]   raw RGB, any size (one size per call)
    age     float32[None]                years, NaN = unknown           (metadata models only)
    sex     string[None]                 female / male / unknown        (metadata models only)
    site    string[None]                 anatomical site, see the vocabulary (metadata models only)

and returns `probabilities` float32[None, C], `top_class` string[None] and `class_names`
string[C]. For a run with a decision rule (decision_rule.json) `probabilities` are the adjusted
ones, softmax * prior^-tau renormalised inside the graph, and `top_class` their argmax: what
`skinkeras evaluate` scored. metadata_encoding.json describes the rule under `decision_rule`
(`applied_in_model` true here; a .tflite model returns the plain softmax and the app applies it). Resizing, colour constancy, metadata encoding and the backbone's input scaling are all
graph ops, so `tf.saved_model.load` needs neither skinkeras nor Keras.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

from skinkeras.errors import SkinkerasError

LABELS_FILE = "labels.txt"
ENCODING_FILE = "metadata_encoding.json"
VERIFICATION_FILE = "verification.json"
EXPORT_INFO_FILE = "export.json"
INPUT_CONTRACT = ("raw RGB 0..255 (uint8 or float32), channels last, resized to {size} x {size} "
                  "(bilinear, antialiased when shrinking)")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A run's preprocessing contract (from preprocessing.json and config.json)."""

    class_names: tuple[str, ...]
    image_size: int
    metadata: object | None  # MetadataEncoding or None
    color_constancy: bool = False
    decision_rule: object | None = None  # skinkeras.evaluation.decision_rule.DecisionRule or None
    rule_in_model: bool = False  # the model's outputs are already adjusted (a serving SavedModel)

    @property
    def applies_rule(self) -> bool:
        """Whether a predictor must adjust the model's probabilities itself."""
        return self.decision_rule is not None and not self.rule_in_model

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def encoding_description(self, *, rule_in_model: bool = False) -> dict:
        """The contract an app needs, written as metadata_encoding.json beside every export
        (`rule_in_model`: the export's graph applies the decision rule itself)."""
        from skinkeras.data.metadata import SEXES

        description = {
            "class_names": list(self.class_names),
            "input_size": [self.image_size, self.image_size],
            "image": INPUT_CONTRACT.format(size=self.image_size),
            "color_constancy": (
                "Shades of Gray p=6 on the full-size image before resizing" if self.color_constancy else None),
            "metadata": None,
        }
        if self.metadata is not None:
            enc = self.metadata
            description["metadata"] = {
                "feature_names": list(enc.feature_names),
                "num_features": enc.num_features,
                "age_mean": enc.age_mean,
                "age_std": enc.age_std,
                "age": "age_normalised = (age - age_mean) / age_std and age_missing = 0; unknown age: 0 and 1",
                "sex_vocabulary": list(SEXES),
                "site_vocabulary": list(enc.sites),
                "categories": "one-hot, lower-case; a value outside the vocabulary is 'unknown'",
            }
        if self.decision_rule is not None:  # absent for a run without one: the plain softmax
            description["decision_rule"] = dict(
                self.decision_rule.to_dict(), applied_in_model=bool(rule_in_model),
                how=("the model's probabilities are already adjusted" if rule_in_model else
                     "the model returns the plain softmax p: the app computes p * prior^-tau, divided by its sum"))
        return description

    @classmethod
    def from_description(cls, description: dict) -> "RunSpec":
        """Inverse of `encoding_description` (for exports read without their run)."""
        from skinkeras.data.metadata import MetadataEncoding

        meta = description.get("metadata")
        encoding = None
        if meta:
            encoding = MetadataEncoding(age_mean=float(meta["age_mean"]), age_std=float(meta["age_std"]),
                                        sites=tuple(meta["site_vocabulary"]))
        rule = description.get("decision_rule")
        return cls(class_names=tuple(description["class_names"]), image_size=int(description["input_size"][0]),
                   metadata=encoding, color_constancy=bool(description.get("color_constancy")),
                   decision_rule=_rule_from(rule), rule_in_model=bool(rule and rule.get("applied_in_model")))


def _rule_from(values):
    from skinkeras.evaluation.decision_rule import DecisionRule

    return DecisionRule.from_dict(values) if values else None


def load_run_spec(run_dir) -> RunSpec:
    """The `RunSpec` of a run directory written by `skinkeras train`."""
    from skinkeras.data.metadata import MetadataEncoding
    from skinkeras.engine.run_directory import as_run
    from skinkeras.evaluation.decision_rule import read_rule

    run = as_run(run_dir)
    preprocessing = run.read_preprocessing()
    color_constancy = bool(run.read_json(run.config.name, default={"data": {}}).get("data", {})
                           .get("color_constancy", False))
    metadata = preprocessing.get("metadata")
    return RunSpec(
        class_names=tuple(preprocessing["class_names"]),
        image_size=int(preprocessing["image_size"]),
        metadata=MetadataEncoding.from_config(metadata) if metadata else None,
        color_constancy=color_constancy,
        decision_rule=read_rule(run),
    )


def preprocess_images(images, image_size: int, *, color_constancy: bool = False):
    """`[B, H, W, 3]` (or `[H, W, 3]`) raw RGB, any dtype -> float32 `[..., S, S, 3]` in 0..255,
    exactly as the evaluation pipeline prepares an image for the model."""
    import tensorflow as tf

    from skinkeras.preprocessing.crops import resize

    # The pipeline decodes to float32 first, then normalises colour, then resizes.
    images = tf.cast(images, tf.float32)
    if color_constancy:
        from skinkeras.preprocessing.color import shades_of_gray

        images = shades_of_gray(images)
    return resize(images, (image_size, image_size))


def model_inputs(spec: RunSpec, images, metadata=None) -> dict:
    """The Keras model's input dict for already preprocessed images and encoded metadata."""
    inputs = {"image": images}
    if spec.metadata is not None:
        inputs["metadata"] = metadata
    return inputs


def serving_archive(model, spec: RunSpec):
    """A `keras.export.ExportArchive` with the app-facing `serve` endpoint (see module docstring)."""
    import keras
    import tensorflow as tf

    class_names = tf.constant(list(spec.class_names))
    size, color_constancy, encoding = spec.image_size, spec.color_constancy, spec.metadata
    rule = spec.decision_rule

    def outputs(probabilities):
        probabilities = tf.cast(probabilities, tf.float32)
        if rule is not None:  # the decision rule, constants from decision_rule.json
            probabilities = probabilities * tf.constant(rule.weights())
            probabilities = probabilities / tf.reduce_sum(probabilities, axis=-1, keepdims=True)
        return {
            "probabilities": probabilities,
            "top_class": tf.gather(class_names, tf.argmax(probabilities, axis=-1)),
            "class_names": tf.identity(class_names),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    images_spec = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")
    if encoding is None:
        def serve(images):
            return outputs(model({"image": preprocess_images(images, size, color_constancy=color_constancy)},
                                 training=False))

        signature = [images_spec]
    else:
        def serve(images, age, sex, site):
            inputs = {"image": preprocess_images(images, size, color_constancy=color_constancy),
                      "metadata": encoding.encode(age, sex, site)}
            return outputs(model(inputs, training=False))

        signature = [images_spec, tf.TensorSpec([None], tf.float32, name="age"),
                     tf.TensorSpec([None], tf.string, name="sex"), tf.TensorSpec([None], tf.string, name="site")]
    archive.add_endpoint(name="serve", fn=serve, input_signature=signature)
    return archive


def check_out_dir(out_dir, *, force: bool) -> Path:
    """Refuses an existing `out_dir` unless `force`, and even then unless it is an export.

    `--force` replaces the folder wholesale, so it must never name a run (`--out RUN` deleted the
    run), a folder holding one, or anything else that is not an export (has no export.json).
    """
    from skinkeras.engine.run_directory import CONFIG

    out_dir = Path(out_dir)
    if not out_dir.exists():
        return out_dir
    if not force:
        raise SkinkerasError(f"{out_dir} exists; choose another path with --out or pass --force to replace it")
    if not out_dir.is_dir() or not (out_dir / EXPORT_INFO_FILE).is_file():
        raise SkinkerasError(f"--force replaces only an export folder, and {out_dir} is not one "
                             f"(it has no {EXPORT_INFO_FILE}); choose another path with --out")
    run_file = next(out_dir.rglob(CONFIG), None)
    if run_file is not None:
        raise SkinkerasError(f"--force would delete the training run in {run_file.parent} "
                             f"(it is inside {out_dir}); choose another path with --out")
    return out_dir


def prepare_out_dir(out_dir, *, force: bool) -> Path:
    """Refuses an existing `out_dir` unless `force` and it is an export (`check_out_dir`); returns
    its clean `.partial` sibling."""
    out_dir = check_out_dir(out_dir, force=force)
    partial = out_dir.with_name(out_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # left by an interrupted export
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return partial


def finish_out_dir(partial: Path, out_dir) -> Path:
    """Renames the complete `partial` into place (replacing an old export only now)."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        out_dir.rename(old)
        partial.rename(out_dir)
        shutil.rmtree(old)
    else:
        partial.rename(out_dir)
    return out_dir


FAILED_SUFFIX = ".failed"  # a new export that failed verification, beside the previous one it spared
_log = logging.getLogger(__name__)


def export_target(out_dir, verification: dict | None) -> Path:
    """Where a staged export goes: over `out_dir`, unless it failed verification and would replace an
    earlier export (kept as it is; the failed one lands beside it, `<out>.failed`, for a look)."""
    out_dir = Path(out_dir)
    if verification is not None and not verification["passed"] and out_dir.exists():
        return out_dir.with_name(out_dir.name + FAILED_SUFFIX)
    return out_dir


def place_export(staged: Path, target: Path, out_dir) -> bool:
    """Moves the complete `staged` export to `target` (`export_target`); True when it replaced `out_dir`."""
    if Path(target) == Path(out_dir):
        finish_out_dir(staged, out_dir)
        return True
    if target.exists():
        shutil.rmtree(target)
    staged.rename(target)
    _log.warning("verification failed: %s is left as it was; the new export is in %s", out_dir, target)
    return False


def directory_size(path) -> int:
    """Bytes of every file under `path` (or of the file `path`)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_sidecar_files(directory, spec: RunSpec, info: dict | None = None) -> list[str]:
    """labels.txt, metadata_encoding.json (what an app reads beside the model) and export.json
    (`info` plus the model's size on disk, measured before the sidecar files are added)."""
    directory = Path(directory)
    info = dict(info or {}, size_bytes=directory_size(directory))
    description = spec.encoding_description(rule_in_model=info.get("format") == "saved_model")
    (directory / LABELS_FILE).write_text("\n".join(spec.class_names) + "\n")
    (directory / ENCODING_FILE).write_text(json.dumps(description, indent=2) + "\n")
    (directory / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return [LABELS_FILE, ENCODING_FILE, EXPORT_INFO_FILE]


def export_serving_saved_model(model, spec: RunSpec, out_dir, *, force: bool = False,
                               info: dict | None = None) -> Path:
    """Writes the serving SavedModel (plus labels.txt, metadata_encoding.json, export.json)
    atomically: into a `.partial` sibling, renamed into place when complete."""
    partial = prepare_out_dir(out_dir, force=force)
    serving_archive(model, spec).write_out(str(partial), verbose=False)
    write_sidecar_files(partial, spec, dict(info or {}, format="saved_model", quantize=None))
    return finish_out_dir(partial, out_dir)
