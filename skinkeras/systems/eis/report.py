"""Table 1 of paper 000 from a run's predictions: our figures with BCa intervals beside the paper's.

`table1(predictions, out_dir)` keeps the evaluated set, scores every row present (`stats`) and
writes into out_dir: table1.md, table1.html (self-contained), metrics.json (every figure,
threshold, count and p-value, and the settings), pvalues.csv (the permutation p-value matrix) and
roc.png (one panel per group, each row's operating point marked). Rows of the paper missing from
the predictions are listed as "not run"; rows not in the paper are reported in a group "Other".
Figures are written in percent with one decimal, as the paper prints them.
"""

from __future__ import annotations

from pathlib import Path

from skinkeras.evaluation.formatting import dumps, interval, markdown_table, number, sort_key
from skinkeras.systems.eis import rows as table_rows
from skinkeras.systems.eis import stats

FILES = {"markdown": "table1.md", "html": "table1.html", "metrics": "metrics.json",
         "pvalues": "pvalues.csv", "roc": "roc.png"}
METRICS = (("sensitivity", "Sensitivity"), ("specificity", "Specificity"), ("auc", "AUC"))
TIE_RULE = ("threshold = the largest with sensitivity >= the target; a score equal to the "
            "threshold is called malignant (ties count positive)")


def table1(predictions, out_dir, *, evaluate_on="benign+melanoma", diagnosis=None,
           target_sensitivity=0.98, n_resamples=10_000, n_permutations=10_000, seed=0,
           pretrained=False, alpha=0.05) -> tuple[dict, dict]:
    """Evaluate every row of `predictions` (model column = row id) the paper's way and write the
    report files into `out_dir`. Returns (metrics, {role: path})."""
    ids, counts, notes = stats.evaluated_ids(predictions, diagnosis, evaluate_on)
    positive, scores, missing = stats.aligned_scores(predictions, ids)
    if missing:
        notes.append(f"rows missing lesions ({', '.join(f'{k} {v}' for k, v in missing.items())}): every "
                     f"row is scored on the {positive.size} lesions all rows predicted")
    ordered = [r for r in table_rows.ROW_IDS if r in scores] + [r for r in scores if r not in table_rows.ROWS_BY_ID]
    results = {}
    for row_id in ordered:
        figures = stats.row_metrics(positive, scores[row_id], target_sensitivity=target_sensitivity,
                                    n_resamples=n_resamples, seed=seed, confidence=1 - alpha)
        results[row_id] = {"label": table_rows.row_label(row_id, pretrained), "group": table_rows.group_of(row_id),
                           **figures, "paper": table_rows.paper_figures(row_id, pretrained)}
    tests = stats.permutation_matrix(positive, {r: scores[r] for r in ordered},
                                     target_sensitivity=target_sensitivity, n_permutations=n_permutations,
                                     seed=seed, alpha=alpha)
    metrics = {
        "evaluate_on": evaluate_on, "counts": {**counts, "scored": int(positive.size),
                                               "scored_positive": int(positive.sum())},
        "target_sensitivity": target_sensitivity, "tie_rule": TIE_RULE, "confidence": 1 - alpha,
        "ci_method": "BCa bootstrap over lesions", "n_resamples": n_resamples,
        "n_permutations": n_permutations, "seed": seed, "alpha": alpha, "pretrained": pretrained,
        "permutation_metric": f"specificity at {target_sensitivity:.0%} sensitivity, threshold "
                              "re-chosen in each permutation",
        "notes": notes, "rows": results,
        "not_run": [r for r in table_rows.ROW_IDS if r not in scores], "permutation": tests,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {role: out_dir / name for role, name in FILES.items()}
    paths["metrics"].write_text(dumps(metrics), encoding="utf-8")
    paths["markdown"].write_text(markdown(metrics), encoding="utf-8")
    paths["html"].write_text(html(metrics), encoding="utf-8")
    paths["pvalues"].write_text(pvalues_csv(tests), encoding="utf-8")
    plot_roc(positive, scores, results, paths["roc"], target_sensitivity)
    return metrics, paths


def _percent(value) -> str:
    return number(100 * value, 1) if value is not None else number(None)


def _cell(value, ci) -> str:
    text = interval([100 * v if v is not None else None for v in ci or (None, None)], style="dash", digits=1)
    return _percent(value) + (f" ({text})" if text != "n/a" else "")


def _paper_cell(paper, metric) -> str:
    if not paper:
        return ""
    value, low, high = paper[metric]
    return f"{value:.1f} ({low:.1f} - {high:.1f})"


def _best(metrics: dict) -> set:
    """(row id, metric) of the best specificity and AUC in each group (ties all bold)."""
    best = set()
    groups = {}
    for row_id, row in metrics["rows"].items():
        groups.setdefault(row["group"], []).append(row_id)
    for members in groups.values():
        for metric in ("specificity", "auc"):
            top = max(sort_key(metrics["rows"][r][metric]) for r in members)
            best |= {(r, metric) for r in members if sort_key(metrics["rows"][r][metric]) == top}
    return best


def _lines(metrics: dict):
    """(group, label, row id, our cells, paper cells) in the paper's order, then "not run" rows."""
    order = list(table_rows.GROUPS) + ["Other"]
    rows = sorted(metrics["rows"].items(), key=lambda item: order.index(item[1]["group"]))
    for row_id, row in rows:
        ours = [_cell(row[m], row[m + "_ci"]) for m, _ in METRICS]
        yield row["group"], row["label"], row_id, ours, [_paper_cell(row["paper"], m) for m, _ in METRICS]
    for row_id in metrics["not_run"]:
        paper = table_rows.paper_figures(row_id, metrics["pretrained"])
        yield (table_rows.group_of(row_id), table_rows.row_label(row_id, metrics["pretrained"]), row_id,
               ["not run"] * 3, [_paper_cell(paper, m) for m, _ in METRICS])


def _summary(metrics: dict) -> list[str]:
    c = metrics["counts"]
    kinds = ", ".join(f"{v} {k}" for k, v in c.items() if k in ("benign", "melanoma", "malignant"))
    return [
        f"Evaluated set ({metrics['evaluate_on']}): {c['lesions']} lesions ({kinds}); scored: {c['scored']} "
        f"lesions ({c['scored_positive']} positive). The paper evaluated its {table_rows.PAPER_N['benign']} benign "
        f"lesions and its melanomas (of {table_rows.PAPER_N['malignant']} malignant lesions; the melanoma count is "
        f"not stated).",
        f"Operating point: {metrics['target_sensitivity']:.0%} sensitivity; {metrics['tie_rule']}. Sensitivity "
        f"and specificity are at that fixed threshold.",
        f"Intervals: {metrics['confidence']:.0%} {metrics['ci_method']}, {metrics['n_resamples']:,} resamples "
        f"(seed {metrics['seed']}). Figures in percent; bold: best specificity / AUC in each group.",
        f"Permutation tests: {metrics['permutation_metric']}, {metrics['n_permutations']:,} paired permutations, "
        f"alpha {metrics['alpha']}.",
        *metrics["notes"],
    ]


def markdown(metrics: dict) -> str:
    best = _best(metrics)
    header = ["group", "model", "row"] + [f"{t} (ours)" for _, t in METRICS] + [f"{t} (paper)" for _, t in METRICS]
    body = []
    for group, label, row_id, ours, paper in _lines(metrics):
        ours = [f"**{v}**" if (row_id, m) in best else v for v, (m, _) in zip(ours, METRICS)]
        body.append([group, label, row_id, *ours, *paper])
    lines = ["# Table 1: EIS, dermoscopy and combined models", ""] + [f"- {s}" for s in _summary(metrics)]
    lines += ["", *markdown_table(header, body), "", "## Thresholds and counts", ""]
    lines += markdown_table(["row", "threshold", "TP", "FN", "TN", "FP"], [
        [r, number(v["threshold"], 4), v["tp"], v["fn"], v["tn"], v["fp"]] for r, v in metrics["rows"].items()])
    tests = metrics["permutation"]
    if len(tests["rows"]) > 1:
        lines += ["", f"## Permutation p-values (specificity; * below alpha = {metrics['alpha']})", ""]
        lines += markdown_table(["", *tests["rows"]], [
            [a, *("" if i == j else number(p) + ("*" if p < metrics["alpha"] else "") for j, p in enumerate(row))]
            for i, (a, row) in enumerate(zip(tests["rows"], tests["matrix"]))])
    return "\n".join(lines + ["", f"![ROC curves]({FILES['roc']})", ""])


def html(metrics: dict) -> str:
    from html import escape

    best = _best(metrics)
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}th{background:#eee}"
             "td.paper{color:#666}tr.notrun td{color:#999}td.group{font-weight:bold;vertical-align:top}")
    head = "".join(f"<th>{t}<br>ours</th>" for _, t in METRICS) + "".join(f"<th>{t}<br>paper</th>" for _, t in METRICS)
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Table 1</title><style>{style}</style>"
           "</head><body><h1>Table 1: EIS, dermoscopy and combined models</h1><ul>"]
    out += [f"<li>{escape(s)}</li>" for s in _summary(metrics)]
    out.append(f"</ul><table><tr><th>group</th><th>model</th>{head}</tr>")
    lines = list(_lines(metrics))
    for k, (group, label, row_id, ours, paper) in enumerate(lines):
        span = sum(1 for g, *_ in lines if g == group)
        first = k == 0 or lines[k - 1][0] != group
        cells = "".join(f"<td>{'<b>' + escape(v) + '</b>' if (row_id, m) in best else escape(v)}</td>"
                        for v, (m, _) in zip(ours, METRICS))
        cells += "".join(f"<td class='paper'>{escape(v)}</td>" for v in paper)
        group_cell = f"<td class='group' rowspan='{span}'>{escape(group)}</td>" if first else ""
        kind = " class='notrun'" if ours[0] == "not run" else ""
        out.append(f"<tr{kind}>{group_cell}<td title='{escape(row_id)}'>{escape(label)}</td>{cells}</tr>")
    out.append("</table>")
    tests = metrics["permutation"]
    if len(tests["rows"]) > 1:
        out.append(f"<h2>Permutation p-values (specificity; bold below alpha = {metrics['alpha']})</h2><table>"
                   "<tr><th></th>" + "".join(f"<th>{escape(r)}</th>" for r in tests["rows"]) + "</tr>")
        for i, (a, row) in enumerate(zip(tests["rows"], tests["matrix"])):
            cells = "".join("<td></td>" if i == j else (f"<td><b>{number(p)}</b></td>" if p < metrics["alpha"]
                                                         else f"<td>{number(p)}</td>") for j, p in enumerate(row))
            out.append(f"<tr><th>{escape(a)}</th>{cells}</tr>")
        out.append("</table>")
    return "\n".join(out + ["</body></html>", ""])


def pvalues_csv(tests: dict) -> str:
    rows = tests["rows"]
    lines = [",".join(["row", *rows])]
    lines += [",".join([a, *(f"{p:.6g}" for p in row)]) for a, row in zip(rows, tests["matrix"])]
    return "\n".join(lines) + "\n"


def plot_roc(positive, scores: dict, results: dict, path, target_sensitivity: float = 0.98) -> Path:
    """ROC curves, one panel per group present, each row's operating point marked."""
    from skinkeras.evaluation.metrics import roc_curve
    from skinkeras.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    groups = [g for g in (*table_rows.GROUPS, "Other") if any(r["group"] == g for r in results.values())] or ["EIS"]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 4.4), squeeze=False)
    for ax, group in zip(axes[0], groups):
        for row_id, row in results.items():
            if row["group"] != group:
                continue
            fpr, tpr, _ = roc_curve(positive, scores[row_id])
            line, = ax.plot(fpr, tpr, lw=1.2, label=f"{row['label']} (AUC {_percent(row['auc'])})")
            if row["specificity"] is not None:
                ax.plot([1 - row["specificity"]], [row["sensitivity"]], "o", color=line.get_color(), ms=5)
        ax.plot([0, 1], [0, 1], ":", color="#999", lw=0.8)
        ax.set(title=group, xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"ROC curves; dots: the {target_sensitivity:.0%}-sensitivity operating points", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return _save(fig, path)

