"""`skinkeras evaluate` for a two-stage run: every member and every ensemble, per variant.

`predict` gives one predictions file with a model per row group ("segmented/ResNet50",
"segmented/lc_head", ...): on the run's own split from the members' stored predictions, or with
`split="all"` on every image under another root (an external set laid out as released), where the
whole system runs on images it has never seen: the run's segmenter predicts every lesion mask
(as for a new image: no given mask is used), the crops feed the members, and the ensembles fitted on
the run's validation predictions combine them. `score` computes the table (`report`) from it.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path

from skinkeras.errors import SkinkerasError
from skinkeras.evaluation.formatting import number, sort_key
from skinkeras.files import write_json
from skinkeras.systems.two_stage.ensembling import (
    fit_ensemble,
    stored_labels,
    variant_predictions,
)
from skinkeras.systems.two_stage.members import (
    check_member,
    member_probabilities,
    member_table,
    read_members,
)
from skinkeras.systems.two_stage.report import (
    COLUMNS,
    RADAR_AXES,
    markdown_report,
    row_metrics,
)
from skinkeras.systems.two_stage.run_files import TwoStageRun

log = logging.getLogger(__name__)

OWN_SPLITS = ("test", "val", "train")


def _ensemble_names():
    from skinkeras.evaluation.ensembles import ENSEMBLES

    return ENSEMBLES


def predict(run_dir, data_root=None, *, dataset: str | None = None, split: str = "test", multi_crop: bool = False,
            batch_size: int | None = None, fold: int | None = None, seed: int = 0, **_):
    """Predictions of every member and every ensemble of the run (see the module docstring)."""
    from skinkeras.evaluation.predictions import Predictions

    run = TwoStageRun(run_dir)
    config = run.read_config()
    batch_size = batch_size or config.data.batch_size
    members = read_members(run)
    class_names = tuple(run.read_preprocessing()["class_names"])
    if split not in (*OWN_SPLITS, "all"):
        raise SkinkerasError(f"--split must be one of {', '.join((*OWN_SPLITS, 'all'))}. Received: {split!r}")
    if split == "all":
        if not data_root:
            raise SkinkerasError("--split all evaluates the images under --data-root DIR: give the folder")
        external = _external_tables(run, config, data_root, dataset, members["variants"], class_names)
    elif dataset and dataset != config.data.dataset:
        raise SkinkerasError(f"this two-stage run was trained on {config.data.dataset}; evaluate another "
                             f"dataset with --split all. Received: dataset={dataset!r}, split={split!r}")
    parts = []
    for variant in members["variants"]:
        val_ids, val_probs = variant_predictions(run, variant, members["backbones"], "val", multi_crop=multi_crop,
                                                 batch_size=batch_size)
        y_val = stored_labels(run, val_ids, class_names)
        if split == "all":
            ids, probs, labels, groups = _predict_external(run, variant, members["backbones"], external[variant],
                                                           class_names, multi_crop=multi_crop, batch_size=batch_size)
        else:
            ids, probs = variant_predictions(run, variant, members["backbones"], split, multi_crop=multi_crop,
                                             batch_size=batch_size)
            labels, groups = stored_labels(run, ids, class_names), _stored_groups(run, ids)
        candidates = list(zip(members["backbones"], probs))
        for name in _ensemble_names():
            ensemble = fit_ensemble(name, val_probs, y_val, config, seed=seed)
            if name == "lc_head" and not run.ensemble_model(variant).exists():
                run.ensemble_model(variant).parent.mkdir(parents=True, exist_ok=True)
                ensemble.save(run.ensemble_model(variant))
            candidates.append((name, ensemble.predict_proba(probs)))
        for name, p in candidates:
            parts.append(Predictions.from_probabilities(ids=ids, probabilities=p, class_names=class_names,
                                                        y_true=labels, groups=groups, model=f"{variant}/{name}",
                                                        fold=fold))
    return Predictions.concat(parts)


def _stored_groups(run, image_ids):
    import pandas as pd

    stored = pd.read_csv(run.split, dtype=str, keep_default_na=False).set_index("image_id")
    return stored.loc[list(image_ids), "lesion_id"].to_numpy()


def _external_tables(run, config, data_root, dataset, variants, class_names):
    """{variant: the external images as that variant's members see them}: lesion crops (every mask
    predicted by the run's segmenter) or whole images."""
    from skinkeras.segmentation.crop import crop_table
    from skinkeras.systems.two_stage.data import load_dataset_logged, load_segmenter

    table = load_dataset_logged(dataset or config.data.dataset, data_root).with_classes(class_names)
    table = dataclasses.replace(table, samples=table.samples.assign(split="all"))
    tables = {}
    for variant in variants:
        if variant == "whole":
            tables[variant] = table
            continue
        segmenter, segmenter_size = load_segmenter(run, config)
        crops = Path(tempfile.mkdtemp(prefix="skinkeras_two_stage_crops_"))
        log.info("stage 1 on %d new images: lesion masks from the run's segmenter", len(table))
        tables[variant], stats = crop_table(table, crops, image_size=config.data.image_size,
                                            margin=config.two_stage.crop_margin, segmenter=segmenter,
                                            segmenter_image_size=segmenter_size, use_given_masks=False)
        log.info("stage 1: %s", ", ".join(f"{k} {v}" for k, v in stats.items()))
    return tables


def _predict_external(run, variant, backbones, table, class_names, *, multi_crop, batch_size):
    images = member_table(table, run.path)
    ids, probs = None, []
    for backbone in backbones:
        check_member(run.member(variant, backbone), run)
        these, p = member_probabilities(run, variant, backbone, images, class_names, multi_crop=multi_crop,
                                        batch_size=batch_size)
        if ids is not None and list(these) != list(ids):
            raise SkinkerasError(f"{variant}/{backbone}: predicted other images than the other models")
        ids = these
        probs.append(p)
    by_id = table.samples.set_index("image_id")
    return ids, probs, by_id.loc[list(ids), "label"].tolist(), by_id.loc[list(ids), "lesion_id"].to_numpy()


def score(predictions, out_dir, *, run_dir, split: str = "test", multi_crop: bool = False, data_root=None,
          n_resamples: int = 10_000, target_sensitivity: float = 0.98, seed: int = 0, title: str = "",
          extra: dict | None = None, **_) -> tuple[dict, dict]:
    """The table, report.md, table.csv, radar.png and metrics.json of a two-stage predictions file."""
    import pandas as pd

    from skinkeras.evaluation.ensembles import STACKERS
    from skinkeras.systems.two_stage.radar import plot_radar

    run = TwoStageRun(run_dir)
    info = run.read_preprocessing()
    class_names = predictions.class_names
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ensembles = set(_ensemble_names())
    rows, details, val_auc, variants = [], {}, {}, []
    count = n_val = None
    for model, part in predictions.split_by_model().items():
        variant, name = model.split("/", 1)
        if variant not in variants:
            variants.append(variant)
        kind = "ensemble" if name in ensembles else "single"
        y_true = part.labels(class_names)
        count = len(y_true)
        if kind == "single":
            val_ids, val_probs = variant_predictions(run, variant, [name], "val", multi_crop=multi_crop)
            n_val = len(val_ids)
            val_auc[(variant, name)] = row_metrics(stored_labels(run, val_ids, class_names), val_probs[0],
                                                   class_names)[0]["macro_auc"]
        row, full = row_metrics(y_true, part.probabilities(), class_names, n_resamples=n_resamples,
                                target_sensitivity=target_sensitivity, seed=seed)
        rows.append({"variant": variant, "model": name, "kind": kind, **row})
        details[model] = full
        log.info("%s: macro AUC %s", model, number(row["macro_auc"]))

    table = pd.DataFrame(rows, columns=list(COLUMNS))
    files = {"table": out_dir / "table.csv"}
    table.to_csv(files["table"], index=False, float_format="%.4f")
    radar_rows = []
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        singles = [r for r in mine if r["kind"] == "single"]
        best_single = max(singles, key=lambda r: sort_key(val_auc[(variant, r["model"])]))
        stackers = [r for r in mine if r["model"] in STACKERS]
        best_stacker = max(stackers, key=lambda r: sort_key(r["macro_auc"]))
        by_name = {r["model"]: r for r in mine}
        for row, label in ((best_single, f"best single ({best_single['model']})"),
                           (by_name["average"], "averaging"), (by_name["lc_head"], "LC head"),
                           (best_stacker, f"best stacker ({best_stacker['model']})")):
            radar_rows.append({**row, "label": f"{variant}: {label}"})
    files["radar"] = plot_radar(radar_rows, RADAR_AXES, out_dir / "radar.png",
                                title=f"{run.name}: {split} ({count} images)")

    best = max(rows, key=lambda r: sort_key(r["macro_auc"]))
    best_single = max((r for r in rows if r["kind"] == "single"), key=lambda r: sort_key(r["macro_auc"]))
    lc = {r["variant"]: r for r in rows if r["model"] == "lc_head"}
    where = {"test": info["test_source"], "all": f"every image under {data_root}"}.get(split, split)
    summary = (
        f"{count} {split} images ({where}): best row "
        f"{best['variant']}/{best['model']} macro AUC {number(best['macro_auc'])} (MEL AUC {number(best['mel_auc'])}, "
        f"SK AUC {number(best['sk_auc'])}); best single {best_single['variant']}/{best_single['model']} "
        f"{number(best_single['macro_auc'])}; LC head " +
        ", ".join(f"{v} {number(r['macro_auc'])}" for v, r in lc.items())
    )
    notes = [
        {"test": f"Test set: {info['test_source']}.",
         "all": f"External set: every image under {data_root}, never seen in training; lesion masks predicted "
                "by the run's segmenter for every image (no given mask used)."}.get(split, f"Evaluated split: {split}."),
        f"Ensembles fitted on the {n_val} Validation images' predictions"
        + (" (so this is in-sample for them)." if split == "val" else "."),
        "Challenge-task accuracy, sensitivity, specificity, precision and F1 use the fixed threshold 0.5 "
        "on that class's probability; AUCs are threshold-free.",
        "Radar: per variant, the best single model by VALIDATION macro AUC, averaging, the LC head and the "
        f"stacker with the best {split} macro AUC (a display choice, optimistic for that stacker).",
    ]
    metrics = {
        "summary": summary,
        "split": split,
        "n": count,
        "class_names": list(class_names),
        "test_source": info["test_source"],
        "multi_crop": multi_crop,
        "threshold": 0.5,
        "notes": notes,
        "columns": list(COLUMNS),
        "table": rows,
        "details": details,
        **(extra or {}),
    }
    if split != "all" and run.crops_record.exists():
        metrics["crops"] = run.read_json(f"crops/{run.crops_record.name}")["stats"]
    files["metrics"] = write_json(out_dir / "metrics.json", metrics)
    from skinkeras.files import atomic_write_text

    files["report"] = atomic_write_text(out_dir / "report.md",
                                        markdown_report(metrics, title=title or f"{run.name}: two-stage evaluation"))
    return metrics, files


def deployed_row(metrics: dict, deployed: dict) -> dict | None:
    """The table row of the deployed system (variant + ensemble), for the model card."""
    for row in metrics.get("table", []):
        if row["variant"] == deployed.get("variant") and row["model"] == deployed.get("ensemble"):
            return row
    return None
