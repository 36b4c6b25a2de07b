"""The files a two-stage run keeps besides a run's usual ones (`RunDirectory`):

    crops/, crops/crops.json        lesion crops (stage 1) and how each box was found
    models/<variant>/<backbone>/    one classification run per member model
    predictions/<variant>/<backbone>_<split>.npz   image_ids, probabilities (the run's class order)
    segmenter/                      a copy of the segmentation run that cropped (best.keras,
                                    preprocessing.json), so the run is usable on its own
    ensembles/<variant>/lc_head.keras   the LC head fitted on the validation predictions
    data/<variant>/labels.csv       runs written before the engine kept members' images here
"""

from __future__ import annotations

from pathlib import Path

from skinkeras.engine.run_directory import RunDirectory

VARIANTS = ("segmented", "whole")
CROPS_RECORD = "crops.json"


class TwoStageRun(RunDirectory):
    crops = property(lambda self: self.path / "crops")
    crops_record = property(lambda self: self.path / "crops" / CROPS_RECORD)
    segmenter = property(lambda self: RunDirectory(self.path / "segmenter"))

    def member(self, variant: str, backbone: str) -> RunDirectory:
        """The classification run of one member model."""
        return RunDirectory(self.path / "models" / variant / backbone)

    def stored_predictions(self, variant: str, backbone: str, split: str) -> Path:
        return self.path / "predictions" / variant / f"{backbone}_{split}.npz"

    def ensemble_model(self, variant: str, name: str = "lc_head") -> Path:
        return self.path / "ensembles" / variant / f"{name}.keras"

    def legacy_variant_data(self, variant: str) -> Path:
        return self.path / "data" / variant
