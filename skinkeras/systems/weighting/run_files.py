"""The files of a paper-003 run besides a run's usual ones (`RunDirectory`):

    splits.csv                          image_id, lesion_id, label, split_<k> (train / val / test)
                                        for every split k (lesion-grouped, stratified by class)
    cells/<row>/split_<k>/model.keras   the row's model of split k (the hierarchical model with its
                                        head outputs and "probabilities")
    cells/<row>/split_<k>/predictions.csv   its 7-class probabilities of split k's test images
                                        (model = row id, fold = k)
    cells/<row>/split_<k>/selection.json    epoch chosen on split k's validation images, history, time
    predictions.csv                     every cell's predictions (what `evaluate` reads)

A cell (one row, one split) is the unit of resumption: `--resume` keeps every cell whose
predictions.csv exists (written last) and trains the others from their start.
"""

from __future__ import annotations

from pathlib import Path

from skinkeras.engine.run_directory import PREDICTIONS, RunDirectory

MODEL = "model.keras"
SELECTION = "selection.json"


class Cell:
    """One row's model of one split."""

    def __init__(self, path):
        self.path = Path(path)

    model = property(lambda self: self.path / MODEL)
    predictions = property(lambda self: self.path / PREDICTIONS)
    selection = property(lambda self: self.path / SELECTION)

    def is_done(self) -> bool:
        return self.predictions.is_file()


class WeightingRun(RunDirectory):
    cells = property(lambda self: self.path / "cells")
    splits = property(lambda self: self.path / "splits.csv")
    predictions = property(lambda self: self.path / PREDICTIONS)

    def cell(self, row: str, split: int) -> Cell:
        return Cell(self.cells / row / f"split_{int(split)}")
