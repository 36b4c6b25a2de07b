"""The files of a paper-000 run besides a run's usual ones (`RunDirectory`):

    lesion_folds.csv                   lesion_id, label, diagnosis, fold (lesion-grouped, stratified; not
                                       folds.csv, which marks the engine's own cross-validation runs)
    cells/<row>/fold_<k>/infer.keras   the fold's model as it predicts (inputs image / eis / eis_mask)
    cells/<row>/fold_<k>/svm.joblib    the SVM row's fold model (standardisation + SVC)
    cells/<row>/fold_<k>/predictions.csv   the fold's predictions of its left-out lesions
    cells/<row>/fold_<k>/selection.json    epochs chosen on the validation fold, validation AUCs, time
    cells/<row>/predictions.csv        out-of-fold predictions of every lesion (model column = row)
    predictions.csv                    every row's out-of-fold predictions (what `evaluate` reads)

A cell (one row, one fold) is the unit of resumption: `--resume` keeps every cell whose
predictions.csv exists and retrains the others from their start.
"""

from __future__ import annotations

from pathlib import Path

from skinkeras.engine.run_directory import PREDICTIONS, RunDirectory

INFER_MODEL = "infer.keras"
SVM_MODEL = "svm.joblib"
SELECTION = "selection.json"


class Cell:
    """One row's model of one fold."""

    def __init__(self, path):
        self.path = Path(path)

    infer_model = property(lambda self: self.path / INFER_MODEL)
    svm_model = property(lambda self: self.path / SVM_MODEL)
    predictions = property(lambda self: self.path / PREDICTIONS)
    selection = property(lambda self: self.path / SELECTION)

    def is_done(self) -> bool:
        return self.predictions.is_file()


class EISRun(RunDirectory):
    cells = property(lambda self: self.path / "cells")
    lesion_folds = property(lambda self: self.path / "lesion_folds.csv")
    predictions = property(lambda self: self.path / PREDICTIONS)

    def cell(self, row: str, fold: int) -> Cell:
        return Cell(self.cells / row / f"fold_{int(fold)}")

    def row_predictions(self, row: str) -> Path:
        return self.cells / row / PREDICTIONS
