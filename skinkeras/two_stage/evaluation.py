"""`skinkeras evaluate` for a two-stage run: every single model and every ensemble, per variant.

Rows: each of the five classifiers and each ensemble (`skinkeras.two_stage.ensembles`), for the
"segmented" (lesion crops) and "whole" (no segmentation) variants. The ensembles are fitted on the
Validation predictions and applied to the evaluated split (the held-out test part by default).
Columns: 3-class accuracy, balanced accuracy and macro AUC; then, for each ISIC 2017 challenge
task (melanoma vs rest, seborrheic keratosis vs rest), AUC and, at the fixed threshold 0.5 on that
class's probability, accuracy, sensitivity, specificity, precision and F1.

Writes metrics.json ("table" rows with per-row confidence intervals, "summary"), table.csv,
report.md (the table in Markdown) and radar.png.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)

TASKS = {"mel": "melanoma", "sk": "seborrheic_keratosis"}
TASK_TITLES = {"mel": "melanoma vs rest", "sk": "seborrheic keratosis vs rest"}
TASK_COLUMNS = ("auc", "accuracy", "sensitivity", "specificity", "precision", "f1")
COLUMNS = ("variant", "model", "kind", "accuracy", "balanced_accuracy", "macro_auc",
           *(f"{task}_{column}" for task in TASKS for column in TASK_COLUMNS))
RADAR_AXES = (
    ("accuracy", "accuracy"), ("balanced_accuracy", "balanced acc."), ("macro_auc", "macro AUC"),
    ("mel_auc", "MEL AUC"), ("mel_sensitivity", "MEL sens."), ("mel_specificity", "MEL spec."),
    ("sk_auc", "SK AUC"), ("sk_sensitivity", "SK sens."), ("sk_specificity", "SK spec."),
)


def row_metrics(y_true, y_prob, class_names, *, n_resamples: int = 0, target_sensitivity: float = 0.98,
                seed: int = 0) -> tuple[dict, dict]:
    """(the table's columns, the full metrics incl. intervals) for one model's probabilities."""
    from skinkeras.evaluation.metrics import compute_metrics

    full = compute_metrics(y_true, y_prob, class_names, n_resamples=n_resamples, seed=seed,
                           target_sensitivity=target_sensitivity, one_vs_rest=tuple(TASKS.values()))
    row = {key: full[key] for key in ("accuracy", "balanced_accuracy", "macro_auc")}
    for task, class_name in TASKS.items():
        point = full["operating_points"][class_name]
        row[f"{task}_auc"] = point["auc"]
        for column in TASK_COLUMNS[1:]:
            row[f"{task}_{column}"] = point["at_0.5"][column]
    return row, full


def _labels(run_dir: Path, image_ids, class_names) -> np.ndarray:
    import pandas as pd

    from skinkeras.training.trainer import SPLIT_FILE

    stored = pd.read_csv(run_dir / SPLIT_FILE, dtype=str, keep_default_na=False).set_index("image_id")
    return np.array([list(class_names).index(label) for label in stored.loc[list(image_ids), "label"]])


def _variant_predictions(run_dir: Path, variant: str, backbones, split: str, multi_crop: bool, batch_size: int):
    """(image_ids, [probs per backbone]) for one variant and split, rows aligned across models."""
    from skinkeras.two_stage.pipeline import model_dir, predict_model

    ids, probs = None, []
    for backbone in backbones:
        if not (model_dir(run_dir, variant, backbone) / "best.keras").exists():
            raise SkinkerasError(f"{model_dir(run_dir, variant, backbone)} has no best.keras: finish the run "
                                 f"with `skinkeras train ... --out {run_dir} --resume`")
        these, p = predict_model(run_dir, variant, backbone, split, multi_crop=multi_crop, batch_size=batch_size)
        if ids is None:
            ids = these
        elif list(these) != list(ids):
            raise SkinkerasError(f"{variant}/{backbone}: its {split} predictions are not for the same images "
                                 "as the other models'")
        probs.append(p)
    return ids, probs


def evaluate_two_stage_run(run_dir, data_root=None, *, dataset: str | None = None, split: str = "test",
                           out_dir=None, multi_crop: bool = False, n_resamples: int = 10_000,
                           target_sensitivity: float = 0.98, seed: int = 0) -> tuple[dict, dict]:
    """Evaluates every model and ensemble of a two-stage run; returns (metrics, written files)."""
    import pandas as pd

    from skinkeras.experiments.config import load_config
    from skinkeras.two_stage.ensembles import ENSEMBLES, STACKERS, make_ensemble
    from skinkeras.two_stage.radar import plot_radar

    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.json")
    if split not in ("test", "val", "train"):
        raise SkinkerasError(f"a two-stage run is evaluated on its own split (test, val or train): its crops "
                             f"live in the run. Received: split={split!r}")
    if dataset and dataset != config.data.dataset:
        raise SkinkerasError(f"this two-stage run was trained on {config.data.dataset}. Received: dataset={dataset!r}")
    if data_root and Path(data_root).resolve() != Path(config.data.root).resolve():
        log.warning("the run reads its images from %s (recorded at training), not from %s",
                    config.data.root, data_root)
    info = json.loads((run_dir / "preprocessing.json").read_text())
    class_names = tuple(info["class_names"])
    variants, backbones = info["variants"], info["backbones"]
    out_dir = Path(out_dir) if out_dir else run_dir / f"evaluation_{split}{'_multicrop' if multi_crop else ''}"
    out_dir.mkdir(parents=True, exist_ok=True)
    ts = config.two_stage

    rows, details, val_auc = [], {}, {}
    count = None
    for variant in variants:
        val_ids, val_probs = _variant_predictions(run_dir, variant, backbones, "val", multi_crop, config.data.batch_size)
        ids, probs = _variant_predictions(run_dir, variant, backbones, split, multi_crop, config.data.batch_size)
        y_val, y_true = _labels(run_dir, val_ids, class_names), _labels(run_dir, ids, class_names)
        count = len(y_true)
        candidates = [(backbone, "single", p) for backbone, p in zip(backbones, probs)]
        for backbone, p in zip(backbones, val_probs):
            val_auc[(variant, backbone)] = row_metrics(y_val, p, class_names)[0]["macro_auc"]
        for name in ENSEMBLES:
            ensemble = make_ensemble(name, seed=seed, lc_epochs=ts.lc_epochs, lc_learning_rate=ts.lc_learning_rate)
            ensemble.fit(val_probs, y_val)
            if name == "lc_head":
                ensemble.save(out_dir / f"lc_head_{variant}.keras")
            candidates.append((name, "ensemble", ensemble.predict_proba(probs)))
        for name, kind, p in candidates:
            row, full = row_metrics(y_true, p, class_names, n_resamples=n_resamples,
                                    target_sensitivity=target_sensitivity, seed=seed)
            rows.append({"variant": variant, "model": name, "kind": kind, **row})
            details[f"{variant}/{name}"] = full
            log.info("%s/%s: macro AUC %s", variant, name, _fmt(row["macro_auc"]))

    table = pd.DataFrame(rows, columns=list(COLUMNS))
    files = {"table": out_dir / "table.csv"}
    table.to_csv(files["table"], index=False, float_format="%.4f")

    radar_rows = []
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        singles = [r for r in mine if r["kind"] == "single"]
        best_single = max(singles, key=lambda r: _key(val_auc[(variant, r["model"])]))
        stackers = [r for r in mine if r["model"] in STACKERS]
        best_stacker = max(stackers, key=lambda r: _key(r["macro_auc"]))
        by_name = {r["model"]: r for r in mine}
        for row, label in ((best_single, f"best single ({best_single['model']})"),
                           (by_name["average"], "averaging"), (by_name["lc_head"], "LC head"),
                           (best_stacker, f"best stacker ({best_stacker['model']})")):
            radar_rows.append({**row, "label": f"{variant}: {label}"})
    files["radar"] = plot_radar(radar_rows, RADAR_AXES, out_dir / "radar.png",
                                title=f"{run_dir.name}: {split} ({count} images)")

    best = max(rows, key=lambda r: _key(r["macro_auc"]))
    singles = [r for r in rows if r["kind"] == "single"]
    best_single = max(singles, key=lambda r: _key(r["macro_auc"]))
    lc = {r["variant"]: r for r in rows if r["model"] == "lc_head"}
    summary = (
        f"{count} {split} images ({info['test_source'] if split == 'test' else split}): best row "
        f"{best['variant']}/{best['model']} macro AUC {_fmt(best['macro_auc'])} (MEL AUC {_fmt(best['mel_auc'])}, "
        f"SK AUC {_fmt(best['sk_auc'])}); best single {best_single['variant']}/{best_single['model']} "
        f"{_fmt(best_single['macro_auc'])}; LC head " +
        ", ".join(f"{v} {_fmt(r['macro_auc'])}" for v, r in lc.items())
    )
    notes = [
        f"Test set: {info['test_source']}." if split == "test" else f"Evaluated split: {split}.",
        f"Ensembles fitted on the {len(y_val)} Validation images' predictions"
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
    }
    crops = run_dir / "crops" / "crops.json"
    if crops.exists():
        metrics["crops"] = json.loads(crops.read_text())["stats"]
    files["metrics"] = out_dir / "metrics.json"
    files["metrics"].write_text(json.dumps(metrics, indent=2, default=_json_default) + "\n")
    files["report"] = out_dir / "report.md"
    files["report"].write_text(markdown_report(metrics, title=f"{run_dir.name}: two-stage evaluation"))
    return metrics, files


def markdown_report(metrics: dict, title: str) -> str:
    """The report: notes, the whole table in Markdown, crop statistics, the radar plot."""
    header = ["variant", "model", "acc", "bal. acc", "macro AUC"] + [
        f"{task.upper()} {name}" for task in TASKS for name in ("AUC", "acc", "sens", "spec", "prec", "F1")]
    lines = [f"# {title}", "", metrics["summary"], ""]
    lines += [f"- {note}" for note in metrics["notes"]]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in metrics["table"]:
        name = row["model"] if row["kind"] == "single" else f"*{row['model']}*"
        values = [row[c] for c in COLUMNS[3:]]
        lines.append("| " + " | ".join([row["variant"], name, *map(_fmt, values)]) + " |")
    lines += ["", "Single models in plain text, ensembles in italics. "
              f"MEL: {TASK_TITLES['mel']}; SK: {TASK_TITLES['sk']}."]
    if metrics.get("crops"):
        lines += ["", "Lesion crops (stage 1): " + ", ".join(f"{k} {v}" for k, v in metrics["crops"].items())]
    lines += ["", "![radar](radar.png)", ""]
    return "\n".join(lines)


def _key(value) -> float:
    return -1.0 if value is None else float(value)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
