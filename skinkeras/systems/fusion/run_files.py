"""The files of a paper-004 run besides a run's usual ones (`RunDirectory`):

    split.csv                           image_id, lesion_id, label, split (the official split, or a
                                        lesion-grouped one when the dataset has none)
    case_folds.csv                      protocol "cv": image_id, fold of every train + valid case
    cases.json                          cases used, with a clinical image, left out (named), per split
    metadata_vector.json                the metadata vector's fields, vocabularies and age statistics
    cells/<row>/fold_<k>/model.keras    the fold's network (inputs dermoscopic / clinical / metadata)
    cells/<row>/fold_<k>/forest.joblib  the random forest row's fold model
    cells/<row>/fold_<k>/predictions.csv    the fold model's predictions of the test cases it can read
    cells/<row>/fold_<k>/selection.json     epoch chosen on the fold's validation cases, history, time
    cells/<row>/predictions.csv         the row's test predictions, every fold, with a `predicted_by`
                                        column (the fallback row for cases without a clinical image)
    predictions.csv                     every row's (what `evaluate` reads)

A cell (one row, one fold) is the unit of resumption: `--resume` keeps every cell whose
predictions.csv exists.
"""

from __future__ import annotations

from pathlib import Path

from skinkeras.engine.run_directory import PREDICTIONS, RunDirectory

MODEL = "model.keras"
FOREST = "forest.joblib"
SELECTION = "selection.json"


class Cell:
    def __init__(self, path):
        self.path = Path(path)

    model = property(lambda self: self.path / MODEL)
    forest = property(lambda self: self.path / FOREST)
    predictions = property(lambda self: self.path / PREDICTIONS)
    selection = property(lambda self: self.path / SELECTION)

    def is_done(self) -> bool:
        return self.predictions.is_file()


class FusionRun(RunDirectory):
    cells = property(lambda self: self.path / "cells")
    case_folds = property(lambda self: self.path / "case_folds.csv")
    cases = property(lambda self: self.path / "cases.json")
    metadata_vector = property(lambda self: self.path / "metadata_vector.json")
    predictions = property(lambda self: self.path / PREDICTIONS)

    def cell(self, row: str, fold: int) -> Cell:
        return Cell(self.cells / row / f"fold_{int(fold)}")

    def row_predictions(self, row: str) -> Path:
        return self.cells / row / PREDICTIONS
