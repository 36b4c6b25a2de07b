"""A two-stage run's ensembles: fitted on the members' stored validation predictions.

Every ensemble of `skinkeras.evaluation.ensembles` is refitted whenever the report needs it (all
are seeded and deterministic). The deployed one (`two_stage.deploy_ensemble` over
`two_stage.deploy_variant`'s members) is what `skinkeras predict` and `skinkeras export` apply to a
new image; the LC head is saved in the run (`ensembles/<variant>/lc_head.keras`) the first time it
is fitted, so its graph can be exported.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from skinkeras.errors import SkinkerasError
from skinkeras.systems.two_stage.members import (
    check_member,
    predict_member,
    read_members,
)
from skinkeras.systems.two_stage.run_files import TwoStageRun

log = logging.getLogger(__name__)

DEPLOYABLE = ("lc_head", "average", "max")  # combiners that run inside an exported graph


def stored_labels(run: TwoStageRun, image_ids, class_names) -> np.ndarray:
    import pandas as pd

    stored = pd.read_csv(run.split, dtype=str, keep_default_na=False).set_index("image_id")
    return np.array([list(class_names).index(label) for label in stored.loc[list(image_ids), "label"]])


def variant_predictions(run: TwoStageRun, variant: str, backbones, split: str, *, multi_crop: bool = False,
                        batch_size: int = 32):
    """(image_ids, [probs per backbone]) for one variant and split, rows aligned across models."""
    ids, probs = None, []
    for backbone in backbones:
        check_member(run.member(variant, backbone), run)
        these, p = predict_member(run, variant, backbone, split, multi_crop=multi_crop, batch_size=batch_size)
        if ids is None:
            ids = these
        elif list(these) != list(ids):
            raise SkinkerasError(f"{variant}/{backbone}: its {split} predictions are not for the same images "
                                 "as the other models'")
        probs.append(p)
    return ids, probs


def fit_ensemble(name: str, val_probs, y_val, config, *, seed: int = 0):
    from skinkeras.evaluation.ensembles import make_ensemble

    ts = config.two_stage
    return make_ensemble(name, seed=seed, lc_epochs=ts.lc_epochs, lc_learning_rate=ts.lc_learning_rate).fit(
        val_probs, y_val)


@dataclasses.dataclass
class DeployedEnsemble:
    """The system applied to a new image: `variant`'s members and the `name` combiner."""

    variant: str
    backbones: list
    name: str
    class_names: tuple
    ensemble: object  # a fitted `skinkeras.evaluation.ensembles.Ensemble`

    def describe(self) -> dict:
        return {"variant": self.variant, "backbones": list(self.backbones), "ensemble": self.name}

    def combine(self, probs) -> np.ndarray:
        return self.ensemble.predict_proba(probs)


def deployed_ensemble(run: TwoStageRun, config=None) -> DeployedEnsemble:
    """The run's deployed ensemble, fitted on the validation predictions (and saved, for the LC
    head) the first time."""
    from skinkeras.evaluation.ensembles import LCHeadEnsemble

    config = config or run.read_config()
    members = read_members(run)
    variants, backbones = members["variants"], members["backbones"]
    variant = config.two_stage.deploy_variant
    if variant not in variants:
        log.info("two_stage.deploy_variant=%s was not trained; deploying %s", variant, variants[0])
        variant = variants[0]
    name = config.two_stage.deploy_ensemble
    if name not in DEPLOYABLE:
        raise SkinkerasError(f"two_stage.deploy_ensemble must be one of {', '.join(DEPLOYABLE)} (they run inside "
                             f"an exported graph). Received: {name!r}")
    class_names = tuple(run.read_preprocessing()["class_names"])
    path = run.ensemble_model(variant, name)
    if name == "lc_head" and path.exists():
        ensemble = LCHeadEnsemble.load(path, len(backbones), len(class_names))
    else:
        val_ids, val_probs = variant_predictions(run, variant, backbones, "val", batch_size=config.data.batch_size)
        ensemble = fit_ensemble(name, val_probs, stored_labels(run, val_ids, class_names), config)
        if name == "lc_head":
            path.parent.mkdir(parents=True, exist_ok=True)
            ensemble.save(path)
    return DeployedEnsemble(variant=variant, backbones=list(backbones), name=name, class_names=class_names,
                            ensemble=ensemble)
