"""Table 1 of paper 004 from a run's test predictions: our figures with BCa intervals beside the paper's.

`table1(predictions, out_dir, ...)` scores every row present on the test cases it predicted:
top-1 accuracy, mAP, AUC melanoma vs rest and AUC cancer vs benign (`stats`), per fold (mean and
standard deviation over folds, as the paper prints them) and, with a BCa 95 % interval over cases,
for the mean of the folds' probabilities (the deployed model; with one fold, the model itself). It
tests each fusion row against dermoscopy alone with the same head (paired permutation test on mAP)
and writes table1.md, metrics.json, pvalues.csv, map.png (mAP per row with its interval and the
paper's figure) and, with the random forest, importances.png.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinkeras.evaluation.formatting import dumps, markdown_table
from skinkeras.systems.fusion import rows as table_rows
from skinkeras.systems.fusion import stats

FILES = {"markdown": "table1.md", "metrics": "metrics.json", "pvalues": "pvalues.csv", "map_plot": "map.png",
         "importances": "importances.png"}
HEADERS = {"accuracy": "Top-1 Acc", "map": "mAP", "auc_melanoma": "AUC melanoma", "auc_cancer": "AUC cancer"}
PREDICTED_BY = "predicted_by"


def fold_mean(predictions):
    """(ids, labels, mean probabilities over folds, {fold: (ids, labels, probabilities)}, fallback count)."""
    frame = predictions.frame
    columns = [f"prob_{c}" for c in predictions.class_names]
    index = {c: k for k, c in enumerate(predictions.class_names)}
    folds = {}
    for fold, part in frame.groupby(frame["fold"].fillna(-1).astype(int), sort=True):
        folds[int(fold)] = (part["id"].to_numpy(str), part["y_true"].map(index).to_numpy(np.int64),
                            part[columns].to_numpy(np.float64))
    mean = frame.groupby("id", sort=True).agg({**{c: "mean" for c in columns}, "y_true": "first"})
    fallback = 0
    if PREDICTED_BY in frame:
        first = frame.drop_duplicates("id")
        fallback = int((first[PREDICTED_BY].astype(str) != first["model"].astype(str)).sum())
    return (mean.index.to_numpy(str), mean["y_true"].map(index).to_numpy(np.int64), mean[columns].to_numpy(np.float64),
            folds, fallback)


def table1(predictions, out_dir, *, melanoma_class="MEL", cancer_classes=("BCC", "MEL"), protocol="official",
           n_resamples=10_000, n_permutations=10_000, seed=0, alpha=0.05, forest=None, notes=()) -> tuple[dict, dict]:
    """Score every row of `predictions` (model column = row id); write the report into `out_dir`.
    `forest`: the random forest's selection records (importances, chosen parameters), if any."""
    from skinkeras.evaluation.bootstrap import bootstrap_ci

    functions = stats.metric_functions(predictions.class_names, melanoma_class, cancer_classes)
    by_row = predictions.split_by_model()
    ordered = [r for r in table_rows.ROW_IDS if r in by_row] + [r for r in by_row if r not in table_rows.ROWS_BY_ID]
    results, means = {}, {}
    for row_id in ordered:
        ids, labels, probabilities, folds, fallback = fold_mean(by_row[row_id])
        means[row_id] = (ids, labels, probabilities)
        per_fold = [stats.evaluate(functions, y, p) for _, y, p in folds.values()]
        estimate = stats.evaluate(functions, labels, probabilities)
        intervals = {}
        for name, function in functions.items():
            if estimate[name] is None:
                intervals[name] = [None, None]
                continue
            ci = bootstrap_ci(lambda y, p, f=function: f(y, p), labels, probabilities, n_resamples=n_resamples,
                              seed=seed, confidence=1 - alpha)
            intervals[name] = ci.as_list()
        row = table_rows.ROWS_BY_ID.get(row_id)
        paper = table_rows.PAPER_TABLE1.get(row_id)
        results[row_id] = {
            "label": row.label if row else row_id, "group": row.group if row else "other",
            "cases": int(len(ids)), "predicted_by_fallback": fallback, "fallback_row": row.fallback if row else None,
            "estimate": estimate, "ci": intervals, "folds": len(per_fold),
            "fold_mean": {m: _mean([f[m] for f in per_fold]) for m in functions},
            "fold_sd": {m: _sd([f[m] for f in per_fold]) for m in functions},
            "paper": {m: {"mean": paper[k][0], "sd": paper[k][1]} for k, m in enumerate(table_rows.METRICS)}
            if paper else ({"map": {"mean": table_rows.PAPER_META_EMB_MAP, "sd": None}} if row_id == "meta_emb" else None),
        }
    tests = permutation_tests(means, functions["map"], ordered, n_permutations=n_permutations, seed=seed)
    metrics = {
        "protocol": protocol, "classes": list(predictions.class_names), "melanoma_class": melanoma_class,
        "cancer_classes": [c for c in cancer_classes if c in predictions.class_names],
        "benign_classes": [c for c in predictions.class_names if c not in cancer_classes],
        "ci_method": f"BCa bootstrap over test cases ({n_resamples} resamples) of the mean of the folds' probabilities",
        "confidence": 1 - alpha, "n_resamples": n_resamples, "n_permutations": n_permutations, "seed": seed,
        "permutation_metric": "mAP, paired over the test cases both rows predicted", "notes": list(notes),
        "rows": results, "not_run": [r for r in table_rows.ROW_IDS if r not in by_row], "permutation": tests,
        "forest": forest,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {role: out_dir / name for role, name in FILES.items()}
    paths["metrics"].write_text(dumps(metrics), encoding="utf-8")
    paths["markdown"].write_text(markdown(metrics), encoding="utf-8")
    paths["pvalues"].write_text(pvalues_csv(tests), encoding="utf-8")
    plot_map(metrics, paths["map_plot"])
    if forest and forest.get("importances"):
        plot_importances(forest["importances"], paths["importances"])
    else:
        paths.pop("importances")
    return metrics, {role: str(path) for role, path in paths.items()}


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _sd(values):
    values = [v for v in values if v is not None]
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def permutation_tests(means: dict, metric, ordered, *, n_permutations: int, seed: int) -> list[dict]:
    """Each fusion row against its dermoscopy-only row (`rows.comparisons`), paired on shared cases."""
    from skinkeras.evaluation.permutation import paired_permutation_test

    tests = []
    for a, b in table_rows.comparisons(ordered):
        ids_a, labels_a, p_a = means[a]
        ids_b, _, p_b = means[b]
        shared, ia, ib = np.intersect1d(ids_a, ids_b, return_indices=True)
        result = paired_permutation_test(metric, labels_a[ia], p_a[ia], p_b[ib], n_permutations, seed=seed)
        tests.append({"row": a, "against": b, "cases": int(len(shared)), "map_row": float(metric(labels_a[ia], p_a[ia][None])[0]),
                      "map_against": float(metric(labels_a[ia], p_b[ib][None])[0]),
                      "difference": result.difference, "p_value": result.p_value})
    return tests


def _figure(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _cell(result: dict, metric: str) -> str:
    text = _figure(result["estimate"][metric])
    low, high = result["ci"][metric]
    if low is not None:
        text += f" [{low:.3f}, {high:.3f}]"
    if result["folds"] > 1 and result["fold_sd"][metric] is not None:
        text += f"; folds {result['fold_mean'][metric]:.3f} ({result['fold_sd'][metric]:.3f})"
    paper = (result.get("paper") or {}).get(metric)
    if paper:
        text += f" · paper {paper['mean']:.3f}"
    return text


def markdown(metrics: dict) -> str:
    lines = ["# Paper 004, Table 1: modality combinations on the test split", ""]
    lines.append(f"Protocol: {metrics['protocol']}. Cell: our figure [BCa 95 %]"
                 + ("; mean (sd) over folds" if any(r["folds"] > 1 for r in metrics["rows"].values()) else "")
                 + " · the paper's mean over its five folds (its own 2,917-case dataset, ImageNet ResNet-50).")
    lines.append(f"Cancer: {', '.join(metrics['cancer_classes'])}; benign: {', '.join(metrics['benign_classes'])}; "
                 f"melanoma: {metrics['melanoma_class']}.")
    lines.append("")
    for group in list(table_rows.GROUPS) + ["other"]:
        rows = {k: v for k, v in metrics["rows"].items() if v["group"] == group}
        if not rows:
            continue
        lines += [f"## {group}", ""]
        body = []
        for row_id, result in rows.items():
            cases = str(result["cases"])
            if result["predicted_by_fallback"]:
                cases += f" ({result['predicted_by_fallback']} by {result['fallback_row']}: no clinical image)"
            body.append([result["label"], cases] + [_cell(result, m) for m in HEADERS])
        lines += markdown_table(["Modalities", "Test cases"] + list(HEADERS.values()), body) + [""]
    if metrics["permutation"]:
        lines += ["## Fusion vs dermoscopy alone (paired permutation test on mAP, "
                  f"{metrics['n_permutations']} permutations)", ""]
        body = [[metrics["rows"][t["row"]]["label"] + f" ({t['row']})", t["against"], str(t["cases"]),
                 f"{t['map_row']:.3f}", f"{t['map_against']:.3f}", f"{t['difference']:+.3f}", f"{t['p_value']:.4f}"]
                for t in metrics["permutation"]]
        lines += markdown_table(["Row", "Against", "Cases", "mAP row", "mAP against", "Difference", "p"], body) + [""]
    forest = metrics.get("forest")
    if forest and forest.get("importances"):
        top = sorted(forest["importances"].items(), key=lambda kv: -kv[1])[:10]
        lines += ["## Random forest (metadata only)", "",
                  f"Grid search: {forest.get('summary', '')}", "",
                  "Feature importances (mean decrease in impurity, top 10): "
                  + ", ".join(f"{name} {value:.3f}" for name, value in top), ""]
    if metrics["not_run"]:
        lines += [f"Not run: {', '.join(metrics['not_run'])}.", ""]
    lines += [f"Note: {note}" for note in metrics["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def pvalues_csv(tests: list[dict]) -> str:
    lines = ["row,against,cases,map_row,map_against,difference,p_value"]
    lines += [f"{t['row']},{t['against']},{t['cases']},{t['map_row']:.6f},{t['map_against']:.6f},"
              f"{t['difference']:.6f},{t['p_value']:.6f}" for t in tests]
    return "\n".join(lines) + "\n"


def plot_map(metrics: dict, path) -> Path:
    from skinkeras.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    rows = [(r["label"] + ("" if r["group"] != table_rows.GROUPS[1] else " (no emb.)"), r) for r in metrics["rows"].values()]
    fig, ax = plt.subplots(figsize=(7.5, 0.38 * len(rows) + 1.2))
    for y, (label, r) in enumerate(rows):
        value, (low, high) = r["estimate"]["map"], r["ci"]["map"]
        if value is None:
            continue
        ax.barh(y, value, color="#4c72b0" if r["group"] != table_rows.GROUPS[2] else "#8c8c8c")
        if low is not None:
            ax.plot([low, high], [y, y], color="black", linewidth=1.2)
        paper = (r.get("paper") or {}).get("map")
        if paper:
            ax.plot(paper["mean"], y, marker="D", color="#dd8452", markersize=5)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("mAP on the test split (bar: ours, line: BCa 95 %, diamond: paper)")
    fig.tight_layout()
    return _save(fig, path)


def plot_importances(importances: dict, path, top: int = 15) -> Path:
    from skinkeras.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    items = sorted(importances.items(), key=lambda kv: -kv[1])[:top]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(items) + 1))
    ax.barh(range(len(items)), [v for _, v in items], color="#55a868")
    ax.set_yticks(range(len(items)), [k for k, _ in items], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("random forest feature importance (mean decrease in impurity)")
    fig.tight_layout()
    return _save(fig, path)
