"""A two-stage run's data: the ISIC split with its held-out test part, the lesion-crop stage, and
the member models' tables.

Split. ISIC 2017 as released here has Training and Validation only. Classifiers train on Training
minus a class-stratified, seeded hold-out (`two_stage.test_fraction`), which is the TEST set;
Validation monitors the classifiers and is where the ensembles are fitted. When the release's Test
folder is present, it is the test set instead and nothing is held out.

Crops. Variant "segmented" crops every image to its lesion's bounding box with
`skinkeras.segmentation.crop.crop_table`: the given ISIC mask where there is one, else the U-Net of
`two_stage.segmenter_run` (copied into the run's `segmenter/`). Variant "whole" keeps the image.

Members. Each member model trains on its variant's images as a `SampleTable` handed straight to the
classification trainer; its classes are in sorted order (as the member runs have always had them:
they once read their images through the `folder` loader), reordered to the run's order when the
predictions are stored.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from skinkeras.engine.run_data import read_split, with_stored_split, write_split
from skinkeras.engine.run_directory import RunDirectory
from skinkeras.errors import ConfigError, SkinkerasError
from skinkeras.files import write_json
from skinkeras.systems.two_stage.run_files import VARIANTS, TwoStageRun

log = logging.getLogger(__name__)

SEGMENTER_COMMAND = "skinkeras train unet_ham10000_masks --data-root /path/to/HAM10000"


def active_variants(config) -> list[str]:
    """The variants to train: `two_stage.variants`, without "segmented" when use_segmentation is off."""
    variants = list(dict.fromkeys(config.two_stage.variants))
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"two_stage.variants must be some of {', '.join(VARIANTS)}. Received: {unknown}")
    if not config.two_stage.use_segmentation:
        variants = [v for v in variants if v != "segmented"]
    if not variants:
        raise ConfigError("no variant left to train: two_stage.variants is empty or only 'segmented' "
                          "with two_stage.use_segmentation=false")
    if not config.two_stage.backbones:
        raise ConfigError("two_stage.backbones is empty: name at least one registry backbone")
    return variants


def hold_out_test(table, fraction: float, seed: int):
    """The table with `split` train/val/test: the release's Test folder if present, else a
    class-stratified, seeded `fraction` of the training images. Returns (table, description)."""
    samples = table.samples.copy()
    if (samples["split"] == "test").any():
        return table, "the release's Test folder"
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"two_stage.test_fraction must be in (0, 1). Received: {fraction}")
    rng = np.random.default_rng(seed)
    for label in sorted(samples["label"].unique()):
        rows = samples.index[(samples["split"] == "train") & (samples["label"] == label)].to_numpy()
        count = int(round(len(rows) * fraction))
        if len(rows) >= 2:
            count = min(max(count, 1), len(rows) - 1)  # every class in both parts
        else:
            count = 0
        samples.loc[rng.permutation(rows)[:count], "split"] = "test"
    description = f"a stratified {fraction:.0%} of Training held out (seed {seed})"
    return dataclasses.replace(table, samples=samples), description


def load_dataset_logged(dataset: str, root):
    from skinkeras.data.registry import load_dataset

    table = load_dataset(dataset, root)
    for problem in table.problems:
        if problem.excludes:
            log.warning("left out %s: %s %s", problem.image_id, problem.kind, problem.detail)
    return table


def load_split_table(config, run: TwoStageRun):
    """The ISIC table with its train/val/test split, reusing split.csv when the run has one
    (a resumed run, a cross-validation fold). Returns (table, where the test set came from)."""
    from skinkeras.data.images import check_images

    if not config.data.root:
        raise SkinkerasError("no dataset root given (--data-root DIR or --set data.root=DIR)")
    table = load_dataset_logged(config.data.dataset, config.data.root)
    stored = read_split(run)
    if stored is not None:
        table = with_stored_split(table, stored)
        table = dataclasses.replace(table, samples=table.samples[table.samples["split"] != ""].reset_index(drop=True))
        info = run.read_json(run.preprocessing.name, default={})
        return table, info.get("test_source", f"the split stored in {run.split}")
    # Unreadable images are dropped once here, so every model and variant sees the same rows.
    samples = table.samples
    bad = {p.image_id for p in check_images(samples["image_path"].tolist(), samples["image_id"].tolist())
           if p.excludes}
    if bad:
        log.warning("skipping %d unreadable images: %s", len(bad), ", ".join(sorted(bad)[:20]))
        table = table.subset(~samples["image_id"].isin(bad))
    if not (table.samples["split"] == "val").any():
        raise SkinkerasError(f"{config.data.root} has no validation images (ISIC-2017_Validation_*): "
                             "the ensembles are fitted on them")
    table, source = hold_out_test(table, config.two_stage.test_fraction, config.split.seed)
    write_split(run, table)
    return table, source


# ---- stage 1: the lesion crops ------------------------------------------------------------------
def needs_segmenter(table) -> bool:
    return bool((table.samples["mask_path"].fillna("") == "").any())


def check_segmenter_run(segmenter_run: str) -> RunDirectory:
    """The segmentation run named by `two_stage.segmenter_run`, or a clear error."""
    if not segmenter_run:
        raise SkinkerasError(
            "the segmented variant needs a lesion segmenter for the images without a mask: train one "
            f"with `{SEGMENTER_COMMAND}` and pass --set two_stage.segmenter_run=RUN_DIR "
            "(or --set two_stage.variants=whole to train without segmentation)")
    run = RunDirectory(segmenter_run)
    if not run.preprocessing.exists():
        raise SkinkerasError(f"two_stage.segmenter_run={segmenter_run}: not a segmentation run "
                             f"(no {run.preprocessing}); train one with `{SEGMENTER_COMMAND}`")
    return run


def copy_segmenter(config, run: TwoStageRun) -> None:
    """Copies the segmenter's best.keras, preprocessing.json and config.json into the run (once)."""
    target = run.segmenter
    if not config.two_stage.segmenter_run or target.best_model.exists():
        return
    source = check_segmenter_run(config.two_stage.segmenter_run)
    target.path.mkdir(parents=True, exist_ok=True)
    for path in (source.preprocessing, source.config, source.best_model):
        if not path.exists():
            raise SkinkerasError(f"the segmenter run {source.path} has no {path.name}: finish training it first")
        shutil.copy2(path, target.path / path.name)


def segmenter_of(run: TwoStageRun, config=None) -> RunDirectory:
    """The run's own copy of its segmenter, else (runs written before the copy) the config's."""
    if run.segmenter.best_model.exists():
        return run.segmenter
    config = config or run.read_config()
    return check_segmenter_run(config.two_stage.segmenter_run)


def load_segmenter(run: TwoStageRun, config=None):
    """(model, its input size) of the run's segmenter."""
    from skinkeras.systems.segmentation.model import load_segmenter as load

    return load(segmenter_of(run, config))


def _crops_done(run: TwoStageRun, table) -> dict | None:
    """The stored crops record when it covers every image of `table`, else None."""
    if not run.crops_record.exists():
        return None
    record = json.loads(run.crops_record.read_text())
    return record if set(record["image_paths"]) >= set(table.samples["image_id"]) else None


def crop_stage(config, table, run: TwoStageRun, *, crop_function=None):
    """Stage 1: the table with image_path on lesion crops under the run's crops/ (reused on resume).

    `crop_function(table, out_dir, *, image_size, margin)` replaces the U-Net crop (tests)."""
    out_dir = run.crops.resolve()  # absolute: the members' tables name the crops by full path
    record = _crops_done(run, table)
    if record is not None:
        samples = table.samples.copy()
        samples["image_path"] = samples["image_id"].map(record["image_paths"])
        log.info("stage 1: reusing the crops in %s", out_dir)
        return dataclasses.replace(table, samples=samples), record["stats"]
    out_dir.mkdir(parents=True, exist_ok=True)
    size, margin = config.data.image_size, config.two_stage.crop_margin
    started = time.monotonic()
    if crop_function is not None:
        cropped, stats = crop_function(table, out_dir, image_size=size, margin=margin)
    else:
        from skinkeras.segmentation.crop import crop_table

        segmenter, segmenter_size = (None, None)
        if needs_segmenter(table):
            segmenter, segmenter_size = load_segmenter(run, config)
        cropped, stats = crop_table(table, out_dir, image_size=size, margin=margin, segmenter=segmenter,
                                    segmenter_image_size=segmenter_size, use_given_masks=True)
    stats = {key: int(value) for key, value in dict(stats).items()}
    log.info("stage 1: %d lesion crops in %.0f s (%s)", len(cropped), time.monotonic() - started,
             ", ".join(f"{k} {v}" for k, v in stats.items()))
    paths = dict(zip(cropped.samples["image_id"], cropped.samples["image_path"]))
    write_json(run.crops_record, {"stats": stats, "image_paths": paths})
    return cropped, stats


def variant_tables(config, table, run: TwoStageRun, variants, *, crop_function=None):
    """{variant: table of its images} and the crop statistics (None without "segmented")."""
    tables, stats = {}, None
    for variant in variants:
        if variant == "segmented":
            tables[variant], stats = crop_stage(config, table, run, crop_function=crop_function)
        else:
            tables[variant] = table
    return tables, stats


# ---- the members' tables ------------------------------------------------------------------------
def member_table(table, root) -> object:
    """A variant's images as a member model reads them: image_id the file's stem, lesion_id the
    ISIC id, classes sorted, no metadata (what the `folder` loader made of the members' labels.csv)."""
    import pandas as pd

    from skinkeras.data.loading import build_table

    samples = table.samples
    paths = [str(Path(p).resolve()) for p in samples["image_path"]]
    raw = pd.DataFrame({
        "image_id": [Path(p).stem for p in paths],
        "image_path": paths,
        "expected_image": paths,
        "label": samples["label"].to_numpy(),
        "lesion_id": samples["image_id"].astype(str).to_numpy(),
        "age": "", "sex": "", "site": "",
        "mask_path": "",
        "split": samples["split"].astype(str).str.lower().to_numpy(),
    })
    class_names = sorted(set(raw["label"]) - {""})
    return build_table("folder", Path(root), raw, class_names, source="the two-stage run's variant images")


def write_member_split(member_images, member: RunDirectory) -> None:
    write_split(member, member_images)
