"""`skinkeras predict EIS_RUN image.jpg --eis lesion.npy`: paper 000's deployed model on a new lesion.

The deployed model is one row of the grid (`eis.deploy_row`, default "serx_gru_ca", or `row=`): the
MEAN of its fold models' probabilities. Cross-validation trained one model per fold, each without
that fold's lesions; no model was trained on every lesion, so the deployed model averages them
all (an ensemble of the K fold models, none of which saw the new lesion either).

A lesion is prepared exactly as the grid evaluated its held-out lesions (`data.predict_lesions`, on
a one-lesion `LesionArrays`): the image read as training read it and resized to eis.image_height x
eis.image_width (OpenCV INTER_AREA), then `eis.eval_crops` crops on the grid (`data.crop_offsets`);
the spectra file (.npy complex (n, 10, 35), `skinkeras.data.eis.load_spectra`) turned into 700
features per measurement, the first eis.max_measurements kept, in `eis.eval_permutations` random
orders (a joint row: one random order per crop), averaged. The orders are drawn from a fixed seed,
so a prediction is repeatable; `shuffle=False` keeps the file's order for every crop (what the
exported SavedModel does). An ensemble row is the max of its members' p(malignant); the SVM row
is the max over measurements of each fold's SVM (`train.svm_lesion_probabilities`), averaged.

Inputs: `predict(pixels, eis=PATH)`; EIS-only rows need no image, image-only rows no spectra.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError
from skinkeras.export.predictor import Predictor
from skinkeras.systems.eis import rows as row_table
from skinkeras.systems.eis.data import CLASS_NAMES, LesionArrays, input_names, one_lesion, resize_image
from skinkeras.systems.eis.run_files import EISRun


def read_eis_features(eis) -> np.ndarray:
    """float32 (n, 700) features of a spectra file path (or a complex (n, 10, 35) array); a missing
    or malformed file raises SkinkerasError naming it and the reason."""
    from skinkeras.data.eis import load_spectra, read_spectra_header, spectra_to_features

    if isinstance(eis, (str, Path)):
        path = Path(eis)
        if not path.is_file():
            raise SkinkerasError(f"--eis {path}: no such file (the lesion's spectra, .npy complex (n, 10, 35))")
        try:
            read_spectra_header(path)
        except (OSError, ValueError) as error:
            raise SkinkerasError(f"--eis {path}: not a .npy file ({error})") from None
        try:
            spectra = load_spectra(path)
        except SkinkerasError as error:
            raise SkinkerasError(f"--eis: {error}") from None
        return spectra_to_features(spectra)
    try:
        return spectra_to_features(np.asarray(eis))
    except ValueError as error:
        raise SkinkerasError(f"EIS spectra: {error}") from None


class _FoldMean:
    """The fold models of one row as one model for `data.predict_lesions`: the mean of their
    probabilities on the same inputs (the same crops and measurement orders)."""

    def __init__(self, models):
        self.models = models
        self.input = dict.fromkeys(input_names(models[0]))

    def predict_on_batch(self, feed):
        return np.mean([np.asarray(m.predict_on_batch(feed), np.float64) for m in self.models], axis=0)


def fold_cells(run: EISRun, row: str, folds: int, filename: str) -> list[Path]:
    paths = [run.cell(row, k).path / filename for k in range(folds)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise SkinkerasError(f"{run.path} has no {missing[0].relative_to(run.path)}: row {row} was not trained "
                             f"on every fold (finish it with skinkeras train --resume --out {run.path}, "
                             f"or deploy another row)")
    return paths


class EISPredictor(Predictor):
    """The deployed row of an EIS run (see the module docstring). Attributes: `row` (a `rows.Row`),
    `config`, `models` (the fold models; SVM pipelines for the svm row), `members` (ensembles)."""

    kind = "eis run"
    extra_inputs = ("eis",)
    needs_image = False

    def __init__(self, run_dir, row: str | None = None):
        from skinkeras.engine.run_directory import as_run
        from skinkeras.export.serving import RunSpec

        self.run = EISRun(as_run(run_dir).path)
        self.config = self.run.read_config()
        e = self.config.eis
        row_id = row or e.deploy_row
        if row_id not in row_table.ROWS_BY_ID:
            raise SkinkerasError(f"eis.deploy_row {row_id!r} is not a row; valid: {', '.join(row_table.ROW_IDS)}")
        self.row = row_table.ROWS_BY_ID[row_id]
        super().__init__(RunSpec(class_names=CLASS_NAMES, image_size=int(e.crop_size), metadata=None))
        self.members = [EISPredictor(self.run.path, member) for member in self.row.members]
        from skinkeras.systems.eis.run_files import INFER_MODEL, SVM_MODEL

        # Checked now, loaded on first use (a missing input is refused before seconds of loading).
        self.model_files = [] if self.members else fold_cells(
            self.run, row_id, e.folds, SVM_MODEL if self.row.kind == "svm" else INFER_MODEL)
        self._models = None

    @property
    def models(self) -> list:
        """The fold models (scikit-learn pipelines for the SVM row); [] for an ensemble."""
        if self._models is None:
            if self.row.kind == "svm":
                import joblib

                self._models = [joblib.load(p) for p in self.model_files]
            else:
                from skinkeras.saving import load_model

                self._models = [load_model(p, compile=False) for p in self.model_files]
        return self._models

    @property
    def uses_images(self) -> bool:
        return self.row.uses_images or any(m.uses_images for m in self.members)

    @property
    def uses_eis(self) -> bool:
        return self.row.uses_eis or any(m.uses_eis for m in self.members)

    def describe(self) -> dict:
        e = self.config.eis
        return {"row": self.row.id, "label": self.row.label, "kind": self.row.kind, "folds": e.folds,
                "deployed": f"mean of the {e.folds} fold models' probabilities" if not self.members
                else f"max of {' and '.join(self.row.members)}'s p(malignant)",
                "uses_images": self.uses_images, "uses_eis": self.uses_eis}

    # --- inputs ---------------------------------------------------------------------------

    def resize(self, pixels) -> np.ndarray:
        """uint8 RGB at eis.image_height x eis.image_width, as the trainer resized its images."""
        e = self.config.eis
        pixels = np.asarray(pixels, np.uint8)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise SkinkerasError(f"an image must be RGB [H, W, 3]. Received: shape {pixels.shape}")
        return resize_image(pixels, e.image_height, e.image_width)

    def lesion(self, pixels=None, eis=None) -> LesionArrays:
        """A one-lesion `LesionArrays` of what the row needs (checked: one-line errors)."""
        name = f"row {self.row.id} ({self.row.label})"
        if self.uses_images and pixels is None:
            raise SkinkerasError(f"{name} needs the lesion's dermoscopy image (skinkeras predict RUN IMAGE)")
        if self.uses_eis and eis is None:
            raise SkinkerasError(f"{name} needs the lesion's EIS spectra: --eis lesion.npy")
        if eis is not None and not self.uses_eis:
            raise SkinkerasError(f"{name} is an image model: it takes no --eis")
        features = read_eis_features(eis) if eis is not None else None
        return one_lesion(self.resize(pixels) if self.uses_images else None, features)

    # --- prediction -----------------------------------------------------------------------

    def predict(self, pixels=None, age=None, sex=None, site=None, *, eis=None, shuffle: bool = True,
                **extra) -> np.ndarray:
        """float32[2] (benign, malignant) for one lesion: uint8 image `[H, W, 3]` (any size; None for
        EIS-only rows) and `eis` (a spectra file path or a complex (n, 10, 35) array). Age, sex
        and site are not used by paper 000's models. `shuffle=False`: the measurements in the
        file's order for every crop (the SavedModel export's behaviour)."""
        if extra:
            self.check_extra_inputs(extra)
        return self.predict_lesion(self.lesion(pixels, eis), shuffle=shuffle)

    def predict_lesion(self, arrays: LesionArrays, *, shuffle: bool = True) -> np.ndarray:
        if self.members:
            p = max(float(m.predict_lesion(arrays, shuffle=shuffle)[1]) for m in self.members)
            return np.array([1.0 - p, p], np.float32)
        if self.row.kind == "svm":
            from skinkeras.systems.eis.train import svm_lesion_probabilities

            p = float(np.mean([svm_lesion_probabilities(m, arrays, [0])[0] for m in self.models]))
            return np.array([1.0 - p, p], np.float32)
        e = self.config.eis
        from skinkeras.systems.eis.data import predict_lesions

        probabilities = predict_lesions(
            _FoldMean(self.models), arrays, [0], use_images=self.row.uses_images, use_eis=self.row.uses_eis,
            crop_size=e.crop_size, eval_crops=e.eval_crops, eval_permutations=e.eval_permutations,
            max_measurements=e.max_measurements, shuffle=shuffle)
        return np.asarray(probabilities[0], np.float32)

    def _predict(self, pixels, age, sex, site):
        return self.predict(pixels)
