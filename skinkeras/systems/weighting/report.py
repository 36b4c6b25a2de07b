"""Tables 2-5 of paper 003 from a run's test predictions: our figures with BCa intervals beside the paper's.

`tables(predictions, out_dir, ...)` scores every row present (model column = row id) on each split
(fold column = split index) it was tested on: per-class RE / PR / F1 and Acc, BAcc, mPR, mF1
(`stats`); the mean over the splits (as the paper reports: "the average of the two splits") with
their standard deviation, and on each split a BCa 95 % interval over the split's test images for
Acc, BAcc, mPR and mF1 (`bootstrap_ci`, case-weighted). Each row is tested against its CEL baseline
(same model and optimizer, no weighting) on each split with a paired permutation test on BAcc
(`paired_permutation_test` with `balanced_accuracy_batched`).

Layout: one table per (model, optimizer) as the paper's Table 2 (flat, Adam), 3 (hierarchical,
Adam), 4 (flat, SGD) and 5 (hierarchical, SGD), rows CEL / FL x - / CB / ES / SPL / OHEM, each cell
"ours (sd over splits) [CI split 0; CI split 1] · paper"; then per table the per-class recall,
precision and F1 (mean over splits; the paper's Figures 1 and 2 plot the recalls with the Adam
optimizer, with no numbers in its text). Writes tables.md, metrics.json, pvalues.csv and
balanced_accuracy.png (BAcc per row and split with its interval, the paper's figure as a diamond).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinkeras.evaluation.formatting import dumps, markdown_table
from skinkeras.systems.weighting import rows as table_rows
from skinkeras.systems.weighting import stats

FILES = {"markdown": "tables.md", "metrics": "metrics.json", "pvalues": "pvalues.csv",
         "bacc_plot": "balanced_accuracy.png"}
HEADERS = {"accuracy": "Acc", "balanced_accuracy": "BAcc", "mean_precision": "mPR", "mean_f1": "mF1"}
TABLE_TITLES = {2: "Table 2: flat model, Adam", 3: "Table 3: hierarchical model, Adam",
                4: "Table 4: flat model, SGD", 5: "Table 5: hierarchical model, SGD"}


def split_parts(predictions) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{split: (ids, labels, probabilities)} of one row's predictions."""
    frame = predictions.frame
    labels, probabilities = predictions.labels(), predictions.probabilities()
    out = {}
    for k in sorted(set(frame["fold"].fillna(0).astype(int))):
        mask = (frame["fold"].fillna(0).astype(int) == k).to_numpy()
        out[int(k)] = (frame["id"].to_numpy(str)[mask], labels[mask], probabilities[mask])
    return out


def score_split(labels, probabilities, class_names, *, n_resamples: int, seed: int, alpha: float) -> dict:
    from skinkeras.evaluation.bootstrap import bootstrap_ci

    predicted = probabilities.argmax(axis=1)
    result = {"cases": int(len(labels)), **stats.summary(labels, predicted, len(class_names))}
    result["ci"] = {}
    for metric in stats.SUMMARY:
        if n_resamples and len(labels) >= 2:
            ci = bootstrap_ci(stats.case_weighted(metric, len(class_names)), labels, predicted,
                              n_resamples=n_resamples, seed=seed, confidence=1 - alpha)
            result["ci"][metric] = ci.as_list()
        else:
            result["ci"][metric] = [None, None]
    result["per_class"] = stats.class_figures(labels, predicted, class_names)
    return result


def tables(predictions, out_dir, *, n_resamples=10_000, n_permutations=10_000, seed=0, alpha=0.05,
           notes=()) -> tuple[dict, dict]:
    """Score every row of `predictions`; write the report into `out_dir` (module docstring)."""
    class_names = predictions.class_names
    by_row = predictions.split_by_model()
    ordered = [r for r in table_rows.ROW_IDS if r in by_row] + [r for r in by_row if r not in table_rows.ROWS_BY_ID]
    parts, results = {}, {}
    for row_id in ordered:
        parts[row_id] = split_parts(by_row[row_id])
        per_split = {k: score_split(y, p, class_names, n_resamples=n_resamples, seed=seed, alpha=alpha)
                     for k, (_, y, p) in parts[row_id].items()}
        row = table_rows.ROWS_BY_ID.get(row_id)
        results[row_id] = {
            "table": row.table if row else None, "label": row.label if row else row_id,
            "model": row.model if row else None, "optimizer": row.optimizer if row else None,
            "loss": row.loss if row else None, "weighting": row.weighting if row else None,
            "splits": {str(k): v for k, v in per_split.items()},
            "mean": {m: _mean([s[m] for s in per_split.values()]) for m in stats.SUMMARY},
            "sd": {m: _sd([s[m] for s in per_split.values()]) for m in stats.SUMMARY},
            "per_class_mean": {c: {f: _mean([s["per_class"][c][f] for s in per_split.values()])
                                   for f in ("recall", "precision", "f1")} for c in class_names},
            "per_class_sd": {c: {f: _sd([s["per_class"][c][f] for s in per_split.values()])
                                 for f in ("recall", "precision", "f1")} for c in class_names},
            "paper": table_rows.PAPER_TABLES.get(row_id),
        }
    tests = permutation_tests(parts, ordered, n_permutations=n_permutations, seed=seed)
    for test in tests:
        results[test["row"]].setdefault("p_vs_baseline", {})[str(test["split"])] = test["p_value"]
    metrics = {
        "classes": list(class_names), "splits": len({k for p in parts.values() for k in p}),
        "ci_method": f"BCa bootstrap over each split's test images ({n_resamples} resamples)",
        "confidence": 1 - alpha, "n_resamples": n_resamples, "n_permutations": n_permutations, "seed": seed,
        "permutation_metric": "balanced accuracy, each row vs its CEL baseline (same model, optimizer, split), "
                              "paired over the split's test images",
        "paper_units": "% (the paper's Tables 2-5: the average of its two 80/20 splits of ISIC 2018's training set)",
        "rows": results, "permutation": tests, "notes": list(notes),
        "tables": {str(n): [r for r in ordered if results[r]["table"] == n] for n in TABLE_TITLES},
        "not_run": [r for r in table_rows.ROW_IDS if r not in by_row],
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {role: out_dir / name for role, name in FILES.items()}
    paths["metrics"].write_text(dumps(metrics), encoding="utf-8")
    paths["markdown"].write_text(markdown(metrics), encoding="utf-8")
    paths["pvalues"].write_text(pvalues_csv(tests), encoding="utf-8")
    plot_balanced_accuracy(metrics, paths["bacc_plot"])
    return metrics, {role: str(path) for role, path in paths.items()}


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _sd(values):
    values = [v for v in values if v is not None]
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def permutation_tests(parts: dict, ordered, *, n_permutations: int, seed: int) -> list[dict]:
    """Each row with a CEL baseline in `parts` against it, split by split, on the shared test images."""
    from skinkeras.evaluation.batched import balanced_accuracy_batched
    from skinkeras.evaluation.permutation import paired_permutation_test

    tests = []
    for row_id in ordered:
        if row_id not in table_rows.ROWS_BY_ID:
            continue
        base = table_rows.baseline_of(row_id)
        if base == row_id or base not in parts:
            continue
        for k, (ids, labels, probabilities) in parts[row_id].items():
            if k not in parts[base]:
                continue
            base_ids, _, base_probabilities = parts[base][k]
            shared, ia, ib = np.intersect1d(ids, base_ids, return_indices=True)
            y, p_row, p_base = labels[ia], probabilities[ia], base_probabilities[ib]
            result = paired_permutation_test(balanced_accuracy_batched, y, p_row, p_base, n_permutations, seed=seed)
            tests.append({"row": row_id, "against": base, "split": int(k), "cases": int(len(shared)),
                          "bacc_row": float(balanced_accuracy_batched(y, p_row)),
                          "bacc_against": float(balanced_accuracy_batched(y, p_base)),
                          "difference": result.difference, "p_value": result.p_value})
    return tests


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _cell(result: dict, metric: str) -> str:
    text = _percent(result["mean"][metric])
    if result["sd"][metric] is not None:
        text += f" ({_percent(result['sd'][metric])})"
    intervals = [s["ci"][metric] for s in result["splits"].values() if s["ci"][metric][0] is not None]
    if intervals:
        text += " [" + "; ".join(f"{_percent(lo)}-{_percent(hi)}" for lo, hi in intervals) + "]"
    paper = (result.get("paper") or {}).get(metric)
    if paper is not None:
        text += f" · {paper:.1f}"
    return text


def _p_values(result: dict) -> str:
    p = result.get("p_vs_baseline")
    if not p:
        return "baseline" if result.get("weighting") == "none" and result.get("loss") == "cel" else ""
    return "; ".join(f"{p[k]:.4f}" for k in sorted(p))


def markdown(metrics: dict) -> str:
    lines = ["# Paper 003, Tables 2-5: sample weighting on the flat and hierarchical models", ""]
    lines.append(f"Each cell: our figure in %, the mean over {metrics['splits']} lesion-grouped 80/20 split(s) "
                 "(sd over splits) [BCa 95 % interval on each split's test images] · the paper's figure "
                 "(ISIC 2018 training set, ImageNet VGG16; mean of its two splits). p: paired permutation test of "
                 f"BAcc against the CEL baseline of the same table, per split ({metrics['n_permutations']} permutations).")
    lines.append("")
    for number, title in TABLE_TITLES.items():
        row_ids = metrics["tables"][str(number)]
        if not row_ids:
            continue
        rows = [metrics["rows"][r] for r in row_ids]
        lines += [f"## {title}", ""]
        body = [[table_rows.LOSS_LABELS[r["loss"]], table_rows.WEIGHTING_LABELS[r["weighting"]], row_id]
                + [_cell(r, m) for m in HEADERS] + [_p_values(r)] for row_id, r in zip(row_ids, rows)]
        lines += markdown_table(["Loss", "Weighting", "Row", *HEADERS.values(), "p BAcc vs CEL (per split)"], body)
        lines += ["", f"Per class, mean over splits (RE / PR / F1, %); the paper's Figures "
                      f"{'1 and 2' if number in (2, 3) else '1 and 2 (Adam only)'} plot the recalls:", ""]
        body = [[row_id] + [" / ".join(_percent(r["per_class_mean"][c][f]) for f in ("recall", "precision", "f1"))
                            for c in metrics["classes"]] for row_id, r in zip(row_ids, rows)]
        lines += markdown_table(["Row", *metrics["classes"]], body) + [""]
    other = [r for r, v in metrics["rows"].items() if v["table"] is None]
    if other:
        lines += [f"Rows outside the tables: {', '.join(other)}.", ""]
    if metrics["not_run"]:
        lines += [f"Not run: {', '.join(metrics['not_run'])}.", ""]
    lines += [f"Note: {note}" for note in metrics["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def pvalues_csv(tests: list[dict]) -> str:
    lines = ["row,against,split,cases,bacc_row,bacc_against,difference,p_value"]
    lines += [f"{t['row']},{t['against']},{t['split']},{t['cases']},{t['bacc_row']:.6f},{t['bacc_against']:.6f},"
              f"{t['difference']:.6f},{t['p_value']:.6f}" for t in tests]
    return "\n".join(lines) + "\n"


def plot_balanced_accuracy(metrics: dict, path) -> Path:
    from skinkeras.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    rows = list(metrics["rows"].items())
    colors = ["#4c72b0", "#55a868", "#c44e52", "#8172b2"]
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.3))
    for y, (row_id, r) in enumerate(rows):
        splits = sorted(r["splits"], key=int)
        for j, k in enumerate(splits):
            s = r["splits"][k]
            offset = (j - (len(splits) - 1) / 2) * 0.25
            color = colors[j % len(colors)]
            ax.plot(s["balanced_accuracy"], y + offset, "o", color=color, markersize=4,
                    label=f"split {k}" if y == 0 else None)
            low, high = s["ci"]["balanced_accuracy"]
            if low is not None:
                ax.plot([low, high], [y + offset, y + offset], color=color, linewidth=1)
        paper = (r.get("paper") or {}).get("balanced_accuracy")
        if paper is not None:
            ax.plot(paper / 100, y, marker="D", linestyle="none", color="#dd8452", markersize=5,
                    label="paper" if y == 0 else None)
    ax.set_yticks(range(len(rows)), [row_id for row_id, _ in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("balanced accuracy on each split's test images (dot: ours, line: BCa 95 %, diamond: paper)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)
