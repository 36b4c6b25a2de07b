"""`skinkeras predict TWO_STAGE_RUN image.jpg`: the deployed two-stage system on new images.

For each image: the run's segmenter predicts the lesion mask, the largest component's box (plus
`two_stage.crop_margin`) is cropped and resized (`skinkeras.segmentation.crop.crop_lesion`, the
training crops' code), every member of the deployed variant predicts the crop as the evaluation
pipeline prepares it, and the deployed ensemble (`ensembling.deployed_ensemble`) combines them.
The "whole" variant skips the crop. No metadata.
"""

from __future__ import annotations

import numpy as np

from skinkeras.export.predictor import Predictor
from skinkeras.systems.two_stage.run_files import TwoStageRun


class TwoStagePredictor(Predictor):
    kind = "two_stage run"

    def __init__(self, run_dir):
        from skinkeras.engine.run_directory import load_run_model
        from skinkeras.export.serving import RunSpec
        from skinkeras.systems.two_stage.data import load_segmenter
        from skinkeras.systems.two_stage.ensembling import deployed_ensemble

        self.run = TwoStageRun(run_dir)
        self.config = self.run.read_config()
        self.deployed = deployed_ensemble(self.run, self.config)
        size = int(self.run.read_preprocessing()["image_size"])
        super().__init__(RunSpec(class_names=self.deployed.class_names, image_size=size, metadata=None))
        self.segmenter = None
        if self.deployed.variant == "segmented":
            self.segmenter, self.segmenter_size = load_segmenter(self.run, self.config)
        self.members = []
        for backbone in self.deployed.backbones:
            member = self.run.member(self.deployed.variant, backbone)
            preprocessing = member.read_preprocessing()
            order = [list(preprocessing["class_names"]).index(name) for name in self.deployed.class_names]
            self.members.append((load_run_model(member), int(preprocessing["image_size"]),
                                 member.read_config().data.color_constancy, order))
        self.last_crop = None

    def crop(self, pixels):
        """(the image the members see, whether a lesion was found); the whole image for "whole"."""
        from skinkeras.segmentation.crop import crop_lesion, predict_masks

        if self.segmenter is None:
            return pixels, None
        mask = predict_masks(self.segmenter, [pixels], self.segmenter_size)[0] > 0.5
        return crop_lesion(pixels, mask, self.spec.image_size, self.config.two_stage.crop_margin)

    def member_probabilities(self, image) -> list[np.ndarray]:
        from skinkeras.export.serving import preprocess_images

        probs = []
        for model, size, color_constancy, order in self.members:
            prepared = preprocess_images(image, size, color_constancy=color_constancy).numpy()[None]
            probs.append(np.asarray(model.predict_on_batch({"image": prepared}), np.float64)[:, order])
        return probs

    def _predict(self, pixels, age, sex, site):
        image, found = self.crop(pixels)
        self.last_crop = {"lesion_found": found}
        return np.asarray(self.deployed.combine(self.member_probabilities(image))[0], np.float32)
