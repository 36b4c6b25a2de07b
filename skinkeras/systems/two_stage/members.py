"""The member models of a two-stage run: one classification run per (variant, backbone).

Each member is backbone -> SE -> GAP -> Dense(hidden_units) -> Dense(classes), trained by the
classification trainer (class-weighted loss, callbacks, best checkpoint, `train.max_minutes` per
model) into `models/<variant>/<backbone>/` on its variant's images. Its validation and test
probabilities are stored under `predictions/` (in the run's class order) for the ensembles and
the report.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np

from skinkeras.engine.run_directory import RunDirectory
from skinkeras.errors import SkinkerasError
from skinkeras.systems.two_stage.data import member_table, write_member_split
from skinkeras.systems.two_stage.run_files import TwoStageRun

log = logging.getLogger(__name__)


def member_experiment(config, variant: str, backbone: str):
    """The classification experiment that trains one of the models on one variant's images."""
    return dataclasses.replace(
        config,
        name=f"{config.name}/{variant}/{backbone}",
        description=f"two-stage model {backbone} on {variant} images (the parent run's crops)",
        task="classification",
        task_config=None,
        split=dataclasses.replace(config.split, folds=0),
        data=dataclasses.replace(config.data, use_metadata=False),
        model=dataclasses.replace(config.model, backbone=backbone, head="se", metadata_branch="none"),
    )


def train_member(config, table, variant: str, backbone: str, run: TwoStageRun, *, verbose="auto") -> dict:
    """Trains (or finishes, or skips when done) one member; returns its run.json summary."""
    from skinkeras.systems.classification.train import train

    member = run.member(variant, backbone)
    images = member_table(table, run.path)
    if member.is_finished():
        log.info("%s/%s: done already, skipped", variant, backbone)
        return member.read_summary()
    if member.is_started():
        log.info("%s/%s: resuming", variant, backbone)
        return train(None, member, resume=True, verbose=verbose, table=images)
    write_member_split(images, member)
    return train(member_experiment(config, variant, backbone), member, verbose=verbose, table=images,
                 classifier_overrides={"hidden_units": int(config.two_stage.hidden_units)})


def member_probabilities(run: TwoStageRun, variant: str, backbone: str, images, class_names, *,
                         multi_crop: bool = False, batch_size: int = 32, model=None):
    """(image ids, probabilities in `class_names` order) of one member on `images` (a member table)."""
    from skinkeras.engine.run_directory import load_run_model
    from skinkeras.systems.classification.evaluate import predict_table

    member = run.member(variant, backbone)
    preprocessing = member.read_preprocessing()
    color_constancy = member.read_config().data.color_constancy
    _, probs, ids = predict_table(model or load_run_model(member), images, preprocessing, batch_size=batch_size,
                                  multi_crop=multi_crop, color_constancy=color_constancy)
    if len(probs) != len(images):
        raise SkinkerasError(f"{variant}/{backbone}: {len(images) - len(probs)} images could not "
                             "be read; predictions would not line up across models")
    # Member classes are sorted; reorder the columns to the run's (ISIC) order.
    order = [list(preprocessing["class_names"]).index(name) for name in class_names]
    lesion_of = dict(zip(images.samples["image_id"], images.samples["lesion_id"]))
    return np.array([lesion_of[i] for i in ids]).astype(str), probs[:, order]


def predict_member(run: TwoStageRun, variant: str, backbone: str, split: str, *, table=None,
                   multi_crop: bool = False, batch_size: int = 32):
    """(image_ids, probabilities in the run's class order) of one member on one of the run's
    splits; stored under predictions/ and reused. `table`: the variant's images (needed only when
    nothing is stored yet; runs written before the engine also find them in data/<variant>/)."""
    path = run.stored_predictions(variant, backbone, split + ("_multicrop" if multi_crop else ""))
    if path.exists():
        stored = np.load(path, allow_pickle=False)
        return stored["image_ids"].astype(str), stored["probs"]
    class_names = run.read_preprocessing()["class_names"]
    if table is None:
        table = _legacy_variant_table(run, variant)
    images = member_table(table, run.path) if "expected_image" not in table.samples else table
    images = images.subset(images.samples["split"] == split)
    if len(images) == 0:
        raise SkinkerasError(f"{run.path} has no {split} images")
    image_ids, probs = member_probabilities(run, variant, backbone, images, class_names, multi_crop=multi_crop,
                                            batch_size=batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, image_ids=image_ids, probs=probs)
    return image_ids, probs


def _legacy_variant_table(run: TwoStageRun, variant: str):
    """The variant's images as the run stored them: data/<variant>/labels.csv (older runs), or
    rebuilt from the run's data root and crops."""
    folder = run.legacy_variant_data(variant)
    if (folder / "labels.csv").exists():
        from skinkeras.data.registry import load_dataset

        return load_dataset("folder", folder, allow_outside_root=True)  # the run wrote it: data root paths
    from skinkeras.systems.two_stage.data import load_split_table, variant_tables

    config = run.read_config()
    table, _ = load_split_table(config, run)
    return variant_tables(config, table, run, [variant])[0][variant]


def member_summary(summary: dict, monitor: str) -> dict:
    return {key: summary.get(key) for key in ("epochs_done", "best_epoch", "best_" + monitor, "train_seconds_total")}


def read_members(run: TwoStageRun) -> dict:
    """The run's variants and backbones (preprocessing.json)."""
    info = json.loads(run.preprocessing.read_text())
    return {"variants": info["variants"], "backbones": info["backbones"]}


def check_member(member: RunDirectory, run: TwoStageRun) -> None:
    if not member.best_model.exists():
        raise SkinkerasError(f"{member.path} has no best.keras: finish the run "
                             f"with `skinkeras train ... --out {run.path} --resume`")
