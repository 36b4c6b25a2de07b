"""Training paper 002's two-stage pipeline (task "two_stage"): crop lesions, train five SE-CNNs.

`train_two_stage(config, run_dir)` runs, resumably:

1. Split. ISIC 2017 as released here has Training and Validation only. Classifiers train on
   Training minus a class-stratified, seeded hold-out (`two_stage.test_fraction`), which is the
   TEST set; Validation monitors the classifiers and is where the ensembles are fitted. When the
   release's Test folder is present, it is the test set instead and nothing is held out.
2. Stage 1 (variant "segmented"): every image is cropped to its lesion's bounding box with
   `skinkeras.segmentation.crop.crop_table`: the given ISIC mask where there is one, else the U-Net
   of `two_stage.segmenter_run`. Variant "whole" keeps the whole image (the paper's "without
   segmentation").
3. Stage 2: for each variant and each backbone in `two_stage.backbones`, a classifier
   backbone -> SE -> GAP -> Dense(hidden_units) -> Dense(3) is trained by the classification
   trainer (`skinkeras.training.trainer.train`: class-weighted loss, callbacks, best checkpoint,
   `train.max_minutes` per model) into `models/<variant>/<backbone>/`, a complete classification run
   that reads the variant's images through the `folder` dataset loader.
4. Each model's validation and test probabilities are stored under `predictions/`, for the
   ensembles and the report (`skinkeras.two_stage.evaluation`).

Run directory:

    config.json, split.csv       the resolved config; image_id, lesion_id, label, split (train/val/test)
    preprocessing.json           class names, image size, where the test set came from, variants
    crops/                       lesion crops (stage 1) and crops.json (how each box was found)
    data/<variant>/labels.csv    the variant's images (absolute paths), labels and split
    models/<variant>/<backbone>/ one classification run per model (trainer layout; run.json = done)
    predictions/<variant>/<backbone>_<split>.npz   image_ids, probabilities (CLASS_NAMES order)
    run.json                     per-model summaries

`--resume` skips every finished model (its run.json exists), continues an interrupted one from its
last epoch, and reuses the split and the crops.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from skinkeras.errors import ConfigError, SkinkerasError
from skinkeras.experiments.config import ExperimentConfig, load_config, save_config

log = logging.getLogger(__name__)

VARIANTS = ("segmented", "whole")
SEGMENTER_COMMAND = "skinkeras train unet_ham10000_masks --data-root /path/to/HAM10000"


def active_variants(config: ExperimentConfig) -> list[str]:
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


def model_dir(run_dir, variant: str, backbone: str) -> Path:
    return Path(run_dir) / "models" / variant / backbone


def prediction_path(run_dir, variant: str, backbone: str, split: str) -> Path:
    return Path(run_dir) / "predictions" / variant / f"{backbone}_{split}.npz"


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


def _load_split_table(config: ExperimentConfig, run_dir: Path):
    """The ISIC table with its train/val/test split, reusing split.csv when the run has one."""
    from skinkeras.data.images import check_images
    from skinkeras.data.registry import load_dataset
    from skinkeras.training.trainer import SPLIT_FILE, read_split

    if not config.data.root:
        raise SkinkerasError("no dataset root given (--data-root DIR or --set data.root=DIR)")
    table = load_dataset(config.data.dataset, config.data.root)
    for problem in table.problems:
        if problem.excludes:
            log.warning("left out %s: %s %s", problem.image_id, problem.kind, problem.detail)
    stored = read_split(run_dir)
    if stored is not None:
        samples = table.samples.copy()
        samples["split"] = samples["image_id"].map(stored).fillna("")
        table = dataclasses.replace(table, samples=samples[samples["split"] != ""].reset_index(drop=True))
        info_path = run_dir / "preprocessing.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        return table, info.get("test_source", f"the split stored in {run_dir / SPLIT_FILE}")
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
    table, source = hold_out_test(table, config.two_stage.test_fraction, config.data.split_seed)
    table.samples[["image_id", "lesion_id", "label", "split"]].to_csv(run_dir / SPLIT_FILE, index=False)
    return table, source


def _needs_segmenter(table) -> bool:
    return bool((table.samples["mask_path"].fillna("") == "").any())


def _load_segmenter(segmenter_run: str):
    """(model, its input size) from a segmentation run directory, or a clear error."""
    if not segmenter_run:
        raise SkinkerasError(
            "the segmented variant needs a lesion segmenter for the images without a mask: train one "
            f"with `{SEGMENTER_COMMAND}` and pass --set two_stage.segmenter_run=RUN_DIR "
            "(or --set two_stage.variants=whole to train without segmentation)")
    run = Path(segmenter_run)
    preprocessing = run / "preprocessing.json"
    if not preprocessing.exists():
        raise SkinkerasError(f"two_stage.segmenter_run={segmenter_run}: not a segmentation run "
                             f"(no {preprocessing}); train one with `{SEGMENTER_COMMAND}`")
    from skinkeras.segmentation.training import load_segmenter

    return load_segmenter(run)


def _crops_done(run_dir: Path, table) -> dict | None:
    """The stored crops record when it covers every image of `table`, else None."""
    done = run_dir / "crops" / "crops.json"
    if not done.exists():
        return None
    record = json.loads(done.read_text())
    return record if set(record["image_paths"]) >= set(table.samples["image_id"]) else None


def crop_stage(config: ExperimentConfig, table, run_dir: Path, *, crop_function=None):
    """Stage 1: the table with image_path on lesion crops under run_dir/crops (reused on resume).

    `crop_function(table, out_dir, *, image_size, margin)` replaces the U-Net crop (tests)."""
    out_dir = (run_dir / "crops").resolve()  # absolute: labels.csv names the crops by full path
    done = out_dir / "crops.json"
    record = _crops_done(run_dir, table)
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
        if _needs_segmenter(table):
            segmenter, segmenter_size = _load_segmenter(config.two_stage.segmenter_run)
        cropped, stats = crop_table(table, out_dir, image_size=size, margin=margin, segmenter=segmenter,
                                    segmenter_image_size=segmenter_size, use_given_masks=True)
    stats = {key: int(value) for key, value in dict(stats).items()}
    log.info("stage 1: %d lesion crops in %.0f s (%s)", len(cropped), time.monotonic() - started,
             ", ".join(f"{k} {v}" for k, v in stats.items()))
    paths = dict(zip(cropped.samples["image_id"], cropped.samples["image_path"]))
    done.write_text(json.dumps({"stats": stats, "image_paths": paths}, indent=2) + "\n")
    return cropped, stats


def write_variant_data(table, folder: Path) -> Path:
    """A `folder`-loader dataset (labels.csv with absolute image paths) for one variant's images."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    samples = table.samples
    # The folder loader names images by file stem, which a crop file need not share with its ISIC
    # id: lesion_id (each ISIC image is its own lesion) keeps the ISIC id, split the run's split.
    frame = pd.DataFrame({"image": [str(Path(p).resolve()) for p in samples["image_path"]],
                          "label": samples["label"], "lesion_id": samples["image_id"],
                          "split": samples["split"]})
    frame.to_csv(folder / "labels.csv", index=False)
    return folder


def model_experiment(config: ExperimentConfig, variant: str, backbone: str, data_root: Path) -> ExperimentConfig:
    """The classification experiment that trains one of the five models on one variant's images."""
    return dataclasses.replace(
        config,
        name=f"{config.name}/{variant}/{backbone}",
        description=f"two-stage model {backbone} on {variant} images",
        task="classification",
        data=dataclasses.replace(config.data, dataset="folder", root=str(data_root), use_metadata=False),
        model=dataclasses.replace(config.model, backbone=backbone, head="se", metadata_branch="none"),
    )


def _classifier_overrides(config: ExperimentConfig) -> dict:
    return {"hidden_units": int(config.two_stage.hidden_units)}


def _write_model_split(table, directory: Path) -> None:
    from skinkeras.training.trainer import SPLIT_FILE

    directory.mkdir(parents=True, exist_ok=True)
    frame = table.samples[["image_id", "lesion_id", "label", "split"]].copy()
    frame["image_id"] = [Path(p).stem for p in table.samples["image_path"]]
    frame.to_csv(directory / SPLIT_FILE, index=False)


def train_model(config, table, variant: str, backbone: str, run_dir: Path, *, verbose="auto") -> dict:
    """Trains (or finishes, or skips when done) one model; returns its run.json summary."""
    from skinkeras.training.trainer import train

    directory = model_dir(run_dir, variant, backbone)
    if (directory / "run.json").exists():
        log.info("%s/%s: done already, skipped", variant, backbone)
        return json.loads((directory / "run.json").read_text())
    if (directory / "checkpoints" / "state.json").exists():
        log.info("%s/%s: resuming", variant, backbone)
        return train(None, directory, resume=True, verbose=verbose)
    experiment = model_experiment(config, variant, backbone, run_dir / "data" / variant)
    _write_model_split(table, directory)
    return train(experiment, directory, verbose=verbose, classifier_overrides=_classifier_overrides(config))


def predict_model(run_dir, variant: str, backbone: str, split: str, *, multi_crop: bool = False,
                  batch_size: int = 32):
    """(image_ids, probabilities in the run's class order) of one model on one split; cached."""
    from skinkeras.data.registry import load_dataset
    from skinkeras.evaluation.run_evaluation import load_run_preprocessing, predict_table
    from skinkeras.training.trainer import load_run_model

    run_dir = Path(run_dir)
    path = prediction_path(run_dir, variant, backbone, split + ("_multicrop" if multi_crop else ""))
    if path.exists():
        stored = np.load(path, allow_pickle=False)
        return stored["image_ids"].astype(str), stored["probs"]
    class_names = json.loads((run_dir / "preprocessing.json").read_text())["class_names"]
    directory = model_dir(run_dir, variant, backbone)
    preprocessing = load_run_preprocessing(directory)
    table = load_dataset("folder", run_dir / "data" / variant)
    table = table.subset(table.samples["split"] == split)
    if len(table) == 0:
        raise SkinkerasError(f"{run_dir} has no {split} images")
    color_constancy = load_config(directory / "config.json").data.color_constancy
    _, probs = predict_table(load_run_model(directory), table, preprocessing, batch_size=batch_size,
                             multi_crop=multi_crop, color_constancy=color_constancy)
    if len(probs) != len(table):
        raise SkinkerasError(f"{variant}/{backbone}: {len(table) - len(probs)} {split} images could not "
                             "be read; predictions would not line up across models")
    # The folder loader sorts class names; reorder the columns to the run's (ISIC) order.
    order = [list(preprocessing["class_names"]).index(name) for name in class_names]
    probs = probs[:, order]
    image_ids = table.samples["lesion_id"].to_numpy().astype(str)  # the ISIC ids
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, image_ids=image_ids, probs=probs)
    return image_ids, probs


def train_two_stage(config: ExperimentConfig, run_dir, *, resume: bool = False, verbose="auto",
                    crop_function=None) -> dict:
    """Trains the whole pipeline into `run_dir` (or continues it with `resume=True`)."""
    run_dir = Path(run_dir)
    if resume:
        if not (run_dir / "config.json").exists():
            raise SkinkerasError(f"nothing to resume in {run_dir}: it has no config.json")
        config = load_config(run_dir / "config.json")
    elif (run_dir / "config.json").exists():
        raise SkinkerasError(f"{run_dir} already holds a run: continue it with --resume or choose another --out")
    if config.task != "two_stage":
        raise ConfigError(f"train_two_stage needs task=two_stage. Received: task={config.task!r}")
    variants = active_variants(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.json")
    started = time.monotonic()

    table, test_source = _load_split_table(config, run_dir)
    if ("segmented" in variants and crop_function is None and _needs_segmenter(table)
            and not _crops_done(run_dir, table)):
        _load_segmenter_check(config.two_stage.segmenter_run)  # fail before any work is done
    from skinkeras.training.trainer import PREPROCESSING_FILE

    (run_dir / PREPROCESSING_FILE).write_text(json.dumps({
        "dataset": config.data.dataset,
        "class_names": list(table.class_names),
        "image_size": config.data.image_size,
        "test_source": test_source,
        "variants": variants,
        "backbones": list(config.two_stage.backbones),
        "input": "raw RGB 0..255, scaled inside each model",
    }, indent=2) + "\n")
    sizes = {s: int((table.samples["split"] == s).sum()) for s in ("train", "val", "test")}
    log.info("isic2017: train %d, val %d (ensembles), test %d (%s)", sizes["train"], sizes["val"],
             sizes["test"], test_source)

    crop_stats = None
    tables = {}
    for variant in variants:
        if variant == "segmented":
            tables[variant], crop_stats = crop_stage(config, table, run_dir, crop_function=crop_function)
        else:
            tables[variant] = table
        write_variant_data(tables[variant], run_dir / "data" / variant)

    jobs = [(v, b) for v in variants for b in config.two_stage.backbones]
    models = {}
    for index, (variant, backbone) in enumerate(jobs, 1):
        print(f"[two-stage {index}/{len(jobs)}] {variant} images, {backbone}", flush=True)
        summary = train_model(config, tables[variant], variant, backbone, run_dir, verbose=verbose)
        for split in ("val", "test"):
            predict_model(run_dir, variant, backbone, split, batch_size=config.data.batch_size)
        import keras

        keras.backend.clear_session()  # ten models in one process: drop the finished one's graphs
        print(f"[two-stage {index}/{len(jobs)}] {variant}/{backbone} done: {summary.get('epochs_done')} epochs, "
              f"{summary.get('train_seconds_total')} s", flush=True)
        models[f"{variant}/{backbone}"] = {
            key: summary.get(key) for key in ("epochs_done", "best_epoch", "best_" + config.train.monitor,
                                              "train_seconds_total")
        }
    summary = {
        "experiment": config.name,
        "task": "two_stage",
        "test_source": test_source,
        "split_sizes": sizes,
        "variants": variants,
        "backbones": list(config.two_stage.backbones),
        "crops": crop_stats,
        "models": models,
        "seconds_this_session": round(time.monotonic() - started, 1),
        "next": f"skinkeras evaluate {run_dir} --data-root {config.data.root}",
    }
    (run_dir / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _load_segmenter_check(segmenter_run: str) -> None:
    """The checks of `_load_segmenter` without loading the model (done up front, before training)."""
    if not segmenter_run or not (Path(segmenter_run) / "preprocessing.json").exists():
        _load_segmenter(segmenter_run)
