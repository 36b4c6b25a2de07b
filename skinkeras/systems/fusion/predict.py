"""`skinkeras predict FUSION_RUN --image derm.jpg --clinical clinic.jpg --sex female --site back`.

The deployed model is one row of the grid (`fusion.deploy_row`, default dsc + macro + meta with the
embedding network, or `row=`): the MEAN of its fold models' probabilities (one model with the
"official" protocol). Each image is prepared as the grid prepared its cases (`data.square_resize`:
the largest centred square, area-resized to fusion.image_size) and the metadata through the run's
stored vector (`metadata_vector.json`): age / sex / site checked against the run's vocabulary, extra
fields (derm7pt: elevation, `--meta elevation=nodular`) against theirs.

A case without a clinical image, for a row with the clinical tower, is predicted by the row's
fallback (the same row without that tower), as in the grid's evaluation; `last_used` names the row
that predicted the last case, and the command line prints it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError
from skinkeras.export.predictor import Predictor
from skinkeras.systems.fusion import rows as row_table
from skinkeras.systems.fusion.run_files import FusionRun


def fold_files(run: FusionRun, row: str, folds: int, filename: str) -> list[Path]:
    paths = [run.cell(row, k).path / filename for k in range(folds)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise SkinkerasError(f"{run.path} has no {missing[0].relative_to(run.path)}: row {row} was not trained on "
                             f"every fold (finish it with skinkeras train --resume --out {run.path}, or deploy "
                             f"another row with --set fusion.deploy_row=...)")
    return paths


class FusionPredictor(Predictor):
    """The deployed row of a fusion run. Attributes: `row`, `config`, `vector` (the metadata vector),
    `fallback` (a FusionPredictor of the fallback row, or None), `last_used` (row id)."""

    kind = "fusion run"

    def __init__(self, run_dir, row: str | None = None):
        from skinkeras.engine.run_directory import as_run
        from skinkeras.export.serving import RunSpec
        from skinkeras.systems.fusion.features import MetadataVector
        from skinkeras.systems.fusion.run_files import FOREST, MODEL

        self.run = FusionRun(as_run(run_dir).path)
        self.config = self.run.read_config()
        f = self.config.fusion
        row_id = row or f.deploy_row
        if row_id not in row_table.ROWS_BY_ID:
            raise SkinkerasError(f"fusion.deploy_row {row_id!r} is not a row; valid: {', '.join(row_table.ROW_IDS)}")
        self.row = row_table.ROWS_BY_ID[row_id]
        if not self.run.metadata_vector.is_file():
            raise SkinkerasError(f"{self.run.path} is not a finished fusion run (no metadata_vector.json)")
        self.vector = MetadataVector.from_config(json.loads(self.run.metadata_vector.read_text()))
        class_names = tuple(json.loads((self.run.path / "class_names.json").read_text())) \
            if (self.run.path / "class_names.json").is_file() else self._class_names()
        super().__init__(RunSpec(class_names=class_names, image_size=int(f.image_size), metadata=self.vector.encoding))
        self.folds = 1 if f.protocol == "official" else int(f.folds)
        self.model_files = fold_files(self.run, row_id, self.folds, FOREST if self.row.kind == "forest" else MODEL)
        self.fallback = FusionPredictor(self.run.path, self.row.fallback) if self.row.fallback else None
        self.extra_inputs = ("clinical",) + tuple(self.vector.extras)
        self.needs_image = "dsc" in self.row.images
        self.last_used = None
        self._models = None

    def _class_names(self) -> tuple[str, ...]:
        from skinkeras.evaluation.predictions import Predictions

        return Predictions.read(self.run.row_predictions(self.row.id)).class_names

    @property
    def models(self) -> list:
        if self._models is None:
            if self.row.kind == "forest":
                import joblib

                self._models = [joblib.load(p) for p in self.model_files]
            else:
                from skinkeras.saving import load_model

                self._models = [load_model(p, compile=False) for p in self.model_files]
        return self._models

    def describe(self) -> dict:
        return {"row": self.row.id, "label": self.row.label, "folds": self.folds,
                "deployed": f"mean of the {self.folds} fold models' probabilities" if self.folds > 1 else "the row's model",
                "fallback_without_clinical": self.row.fallback, "metadata_fields": list(self.vector.fields)}

    # --- inputs ---------------------------------------------------------------------------

    def _square(self, pixels, what: str) -> np.ndarray:
        from skinkeras.systems.fusion.data import square_resize

        pixels = np.asarray(pixels, np.uint8)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise SkinkerasError(f"the {what} image must be RGB [H, W, 3]. Received: shape {pixels.shape}")
        return square_resize(pixels, int(self.config.fusion.image_size)).astype(np.float32)

    def _clinical(self, clinical):
        if clinical is None or isinstance(clinical, np.ndarray):
            return clinical
        from skinkeras.export.predictor import read_image

        path = Path(clinical)
        if not path.is_file():
            raise SkinkerasError(f"--clinical {path}: no such file")
        return read_image(path)

    def feed(self, pixels, clinical, metadata_row) -> dict:
        feed = {}
        if "dsc" in self.row.images:
            feed["dermoscopic"] = self._square(pixels, "dermoscopic")[None]
        if "macro" in self.row.images:
            feed["clinical"] = self._square(clinical, "clinical")[None]
        if self.row.metadata:
            feed["metadata"] = metadata_row[None]
        return feed

    # --- prediction -----------------------------------------------------------------------

    def predict(self, pixels=None, age=None, sex=None, site=None, *, clinical=None, **fields) -> np.ndarray:
        """float32[C] for one case: the dermoscopic uint8 image (any size), the clinical one (a path or
        an array; None: predicted by the fallback row), age / sex / site and extra metadata fields."""
        from skinkeras.export.predictor import check_metadata

        unknown = [name for name in fields if name not in self.vector.extras]
        if unknown:
            self.check_extra_inputs(unknown)
        age, sex, site = check_metadata(self.spec, age, sex, site)
        extras = self.vector.check_fields(fields)
        clinical = self._clinical(clinical)
        if pixels is None and self.needs_image:
            raise SkinkerasError(f"row {self.row.id} needs the dermoscopic image (--image derm.jpg)")
        if clinical is None and self.row.uses_clinical:
            if self.fallback is None:
                raise SkinkerasError(f"row {self.row.id} ({self.row.label}) needs the clinical image: --clinical FILE")
            probabilities = self.fallback.predict(pixels, age, sex, site, **fields)
            self.last_used = self.fallback.last_used
            return probabilities
        metadata_row = self.vector.encode_numpy([age], [sex], [site], {k: [v] for k, v in extras.items()})[0]
        if self.row.kind == "forest":
            from skinkeras.systems.fusion.forest import predict_forest

            probabilities = np.mean([predict_forest(m, metadata_row[None], len(self.class_names))[0]
                                     for m in self.models], axis=0)
        else:
            feed = self.feed(pixels, clinical, metadata_row)
            probabilities = np.mean([np.asarray(m.predict_on_batch(feed), np.float64)[0] for m in self.models], axis=0)
        self.last_used = self.row.id
        return np.asarray(probabilities, np.float32)

    def _predict(self, pixels, age, sex, site):
        return self.predict(pixels, age, sex, site)
