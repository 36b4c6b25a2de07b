"""One prediction interface over a classification run, a serving SavedModel and a `.tflite` file.

`load_export_predictor(path)` recognises an export and returns a `Predictor` (a run directory's
predictor is its task's: `skinkeras.runs.load_predictor`), whose
`predict(pixels, age, sex, site)` takes one raw uint8 RGB image of any size and plain metadata
values, and returns the class probabilities; `predict_many(images, metadata)` does the same for a
list of images with fewer model calls where the kind allows it (a run's Keras model: one call per
list; a SavedModel: a few full-size photos per call, as its graph resizes them; TFLite: one image
per call). Each kind prepares the image the way its users do: the Keras model of a run through
`serving.preprocess_images` (the evaluation pipeline), the SavedModel inside its graph, the TFLite
model with the app-side resize and `encode_numpy` described in its metadata_encoding.json. Metadata values are checked first (`check_metadata`), so a typo in
a site is an error, not a silent "unknown".

Every kind returns the probabilities of the run's decision rule (`skinkeras.evaluation.decision_rule`,
absent: the plain softmax): a run's predictor and a TFLite predictor adjust the model's softmax on
the host (the .tflite returns it plain), a serving SavedModel's graph adjusts it itself.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError

MIN_AGE, MAX_AGE = 0.0, 120.0
MIN_IMAGE_SIDE = 32  # below (a thumbnail, a 1 x 1 file): predicted, with a warning
log = logging.getLogger(__name__)


def check_extra_inputs(predictor, names) -> None:
    """Refuses, in one line, an extra input `predictor` does not take (its `extra_inputs`; a plug-in
    task's predictor that does not derive from `Predictor` takes none)."""
    accepted = tuple(getattr(predictor, "extra_inputs", ()))
    unknown = [name for name in names if name not in accepted]
    if unknown:
        takes = f"it takes {', '.join('--' + n for n in accepted)}" if accepted else "it takes images only"
        what = str(getattr(predictor, "kind", "")).replace("_", " ")
        raise SkinkerasError(f"--{unknown[0]} is not an input of this {what} model ({takes})".replace("this  ", "this "))


def check_metadata(spec, age=None, sex=None, site=None, *, option: str = "--") -> tuple[float, str, str]:
    """Validated `(age, sex, site)`: age NaN when None, sex / site "unknown" when None.

    Raises SkinkerasError for an age outside 0..120, a sex other than female/male/unknown or a
    site outside the run's vocabulary (the message lists the valid values). `option` prefixes the
    field names in messages ("--" for command-line options, "" for CSV columns).
    """
    from skinkeras.data.metadata import SEXES, UNKNOWN

    if age is None or (isinstance(age, float) and math.isnan(age)):
        age_value = float("nan")
    else:
        try:
            age_value = float(age)
        except (TypeError, ValueError):
            raise SkinkerasError(f"{option}age must be a number of years. Received: {age!r}") from None
        if not MIN_AGE <= age_value <= MAX_AGE:
            raise SkinkerasError(f"{option}age must be in {MIN_AGE:g}..{MAX_AGE:g} years. Received: {age!r}")
    sex_value = UNKNOWN if sex is None else str(sex).strip().lower()
    if sex_value not in SEXES:
        raise SkinkerasError(f"{option}sex must be one of {', '.join(SEXES)}. Received: {sex!r}")
    site_value = UNKNOWN if site is None else str(site).strip().lower()
    if spec.metadata is not None and site_value not in spec.metadata.sites:
        raise SkinkerasError(f"{option}site must be one of: {', '.join(spec.metadata.sites)}. Received: {site!r}")
    return age_value, sex_value, site_value


def read_image(path) -> np.ndarray:
    """A user's image file as uint8 RGB `[H, W, 3]`; an unreadable or non-image file, or one over
    the pixel limit (`skinkeras.data.images.max_image_pixels`), raises DataError naming it. An
    image smaller than MIN_IMAGE_SIDE on a side is read with a warning."""
    from skinkeras.data.images import read_image_rgb

    pixels = read_image_rgb(path)
    height, width = pixels.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        log.warning("%s is only %d x %d pixels: the model sees it blown up to its input size, so its "
                    "prediction says little", path, width, height)
    return pixels


class Predictor:
    """Probabilities from one kind of model. Attributes: `kind` ("run", "saved_model" or
    "tflite"), `spec` (`serving.RunSpec`), `keras_model` (runs only, for heatmaps)."""

    kind = ""
    keras_model = None
    # Per-case inputs besides the image, each a file, that `predict` takes as keyword arguments
    # (`skinkeras predict RUN IMAGE --<name> FILE`), e.g. ("eis",) for paper 000's runs.
    extra_inputs: tuple[str, ...] = ()
    needs_image = True  # False: may predict from its extra inputs alone (no image argument)

    def __init__(self, spec):
        self.spec = spec

    def check_extra_inputs(self, names) -> None:
        """Refuses, in one line, an extra input this predictor does not take."""
        check_extra_inputs(self, names)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names

    def encode(self, age, sex, site):
        if self.spec.metadata is None:
            return None
        return self.spec.metadata.encode_numpy([age], [sex], [site])[0]

    def prepare(self, pixels) -> np.ndarray:
        from skinkeras.export.serving import preprocess_images

        return preprocess_images(pixels, self.spec.image_size, color_constancy=self.spec.color_constancy).numpy()

    def predict(self, pixels, age=None, sex=None, site=None, **extra) -> np.ndarray:
        """float32[C] for one uint8 image `[H, W, 3]` and plain metadata values (checked);
        `extra`: the per-case inputs of a predictor that takes them (`extra_inputs`)."""
        self.check_extra_inputs(extra)
        age, sex, site = check_metadata(self.spec, age, sex, site)
        return self.decide(self._predict(np.asarray(pixels, np.uint8), age, sex, site))

    def predict_many(self, images, metadata=None) -> np.ndarray:
        """float32[N, C] for a list of uint8 images `[H, W, 3]` (any sizes) and, per image, an
        already checked `(age, sex, site)` (None: all unknown)."""
        from skinkeras.data.metadata import UNKNOWN

        images = [np.asarray(pixels, np.uint8) for pixels in images]
        metadata = list(metadata) if metadata is not None else [(float("nan"), UNKNOWN, UNKNOWN)] * len(images)
        if len(metadata) != len(images):
            raise ValueError(f"{len(metadata)} metadata rows for {len(images)} images")
        if not images:
            return np.zeros((0, self.spec.num_classes), np.float32)
        return np.asarray(self.decide(self._predict_many(images, metadata)), np.float32)

    def decide(self, probabilities) -> np.ndarray:
        """The run's decision rule on the model's softmax, unless the model applied it already."""
        rule = getattr(self.spec, "decision_rule", None)
        if rule is None or getattr(self.spec, "rule_in_model", False):
            return probabilities
        return rule.apply(probabilities).astype(np.float32)

    def _predict(self, pixels, age, sex, site):
        raise NotImplementedError

    def _predict_many(self, images, metadata):
        # One call per image: a TFLite model's input is [1, S, S, 3], and a pipeline predictor
        # (two-stage) segments and crops each image on its own.
        return np.stack([self._predict(pixels, *values) for pixels, values in zip(images, metadata)])

    def encode_many(self, metadata):
        if self.spec.metadata is None:
            return None
        ages, sexes, sites = zip(*metadata)
        return self.spec.metadata.encode_numpy(ages, sexes, sites)


# Raw pixels per SavedModel call: its graph resizes the raw photos, and batches of more than a few
# full-size photos (600 x 450) were slower per image than single calls on a 2-core CPU (the float
# copies leave the cache); small images still go many to a call.
RAW_PIXELS_PER_CALL = 1 << 20


def _pixel_batches(positions: list[int], shape) -> list[list[int]]:
    step = max(1, RAW_PIXELS_PER_CALL // max(1, int(shape[0]) * int(shape[1])))
    return [positions[k:k + step] for k in range(0, len(positions), step)]


def by_shape(images) -> dict[tuple, list[int]]:
    """{image shape: positions}: a graph taking `[N, H, W, 3]` takes one size per call."""
    groups: dict[tuple, list[int]] = {}
    for position, pixels in enumerate(images):
        groups.setdefault(pixels.shape, []).append(position)
    return groups


class RunPredictor(Predictor):
    kind = "run"

    def __init__(self, run_dir):
        from skinkeras.engine.run_directory import load_run_model
        from skinkeras.export.serving import load_run_spec

        super().__init__(load_run_spec(run_dir))
        self.keras_model = load_run_model(run_dir)

    def _predict(self, pixels, age, sex, site):
        inputs = {"image": self.prepare(pixels)[None]}
        if self.spec.metadata is not None:
            inputs["metadata"] = self.encode(age, sex, site)[None]
        return np.asarray(self.keras_model.predict_on_batch(inputs)[0], np.float32)

    def _predict_many(self, images, metadata):
        # Each photo is resized on its own (a batch of full-size float photos is memory traffic
        # that costs more than it saves, measured in `skinkeras bench predict`); the model takes
        # the small prepared images in one call.
        inputs = {"image": np.stack([self.prepare(pixels) for pixels in images])}
        if self.spec.metadata is not None:
            inputs["metadata"] = self.encode_many(metadata)
        return np.asarray(self.keras_model.predict_on_batch(inputs), np.float32)


class SavedModelPredictor(Predictor):
    kind = "saved_model"

    def __init__(self, directory):
        import tensorflow as tf

        super().__init__(_spec_beside(directory))
        self.serve = tf.saved_model.load(str(directory)).signatures["serving_default"]

    def _predict(self, pixels, age, sex, site):
        import tensorflow as tf

        inputs = {"images": tf.constant(pixels[None])}
        if self.spec.metadata is not None:
            inputs.update(age=tf.constant([age], tf.float32), sex=tf.constant([sex]), site=tf.constant([site]))
        return self.serve(**inputs)["probabilities"].numpy()[0]

    def _predict_many(self, images, metadata):
        import tensorflow as tf

        out = np.zeros((len(images), self.spec.num_classes), np.float32)
        batches = [batch for shape, same_size in by_shape(images).items() for batch in _pixel_batches(same_size, shape)]
        for positions in batches:
            inputs = {"images": tf.constant(np.stack([images[p] for p in positions]))}
            if self.spec.metadata is not None:
                ages, sexes, sites = zip(*(metadata[p] for p in positions))
                inputs.update(age=tf.constant(ages, tf.float32), sex=tf.constant(sexes), site=tf.constant(sites))
            out[positions] = self.serve(**inputs)["probabilities"].numpy()
        return out


class TFLitePredictor(Predictor):
    kind = "tflite"

    def __init__(self, model_file, *, num_threads: int | None = None):
        from skinkeras.export.litert import LiteRTModel

        super().__init__(_spec_beside(Path(model_file).parent))
        self.model = LiteRTModel(model_file, num_threads=num_threads)

    def _predict(self, pixels, age, sex, site):
        return self.model.predict(self.prepare(pixels), self.encode(age, sex, site))


def _spec_beside(directory):
    from skinkeras.export.serving import ENCODING_FILE, RunSpec

    path = Path(directory) / ENCODING_FILE
    if not path.exists():
        raise SkinkerasError(f"{path} is missing: an export needs its {ENCODING_FILE} (written by skinkeras export)")
    return RunSpec.from_description(json.loads(path.read_text()))


def load_export_predictor(path) -> Predictor:
    """A `Predictor` for a SavedModel directory or a `.tflite` file (or a folder holding model.tflite)."""
    from skinkeras.export.litert import MODEL_FILE

    path = Path(path)
    if not path.exists():
        raise SkinkerasError(f"{path}: no such run directory, SavedModel or .tflite file")
    if path.is_dir() and (path / "saved_model.pb").exists():
        return SavedModelPredictor(path)
    if path.is_dir() and (path / MODEL_FILE).exists():
        path = path / MODEL_FILE
    if path.is_file() and path.suffix == ".tflite":
        return TFLitePredictor(path)
    raise SkinkerasError(f"{path} is not a run directory (no config.json and preprocessing.json), a SavedModel "
                         "(no saved_model.pb) or a .tflite file")
