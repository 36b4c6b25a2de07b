"""The model card's sections on what the model scored and takes: evaluation, input contract, export."""

from __future__ import annotations

from pathlib import Path

from skinkeras.evaluation.formatting import (
    count,
    markdown_table,
    number,
    plain,
    size,
    with_interval,
)
from skinkeras.evaluation.formatting import interval as _interval
from skinkeras.export.model_card.facts import TEST_SPLIT
from skinkeras.export.serving import directory_size


def dash_interval(ci) -> str:
    return _interval(ci, style="dash")


def evaluation(facts) -> str:
    lines = ["## Evaluation", ""]
    metrics = facts.test_metrics
    if metrics is None:
        if facts.test_metrics_error:
            lines.append(f"The evaluation file could not be read ({facts.test_metrics_error}).")
        lines.append(
            f"**Not evaluated yet:** run `skinkeras evaluate {facts.run.path} --data-root DIR` "
            "to measure it on the run's held-out test split (writes "
            f"`{facts.run.evaluation(TEST_SPLIT).metrics.relative_to(facts.run.path).as_posix()}`), then export again.")
    elif facts.task == "two_stage":
        lines += two_stage_tables(facts, metrics)
    else:
        lines += metrics_tables(facts, metrics, "the run's held-out test split")
    if facts.other_evaluations and facts.task != "two_stage":
        lines += ["", "Other evaluations found in the run directory:", ""]
        rows = []
        for name, other in facts.other_evaluations:
            rows.append((f"`{name}`", other.get("split", "?"), count(other.get("n")),
                         with_interval(other.get("balanced_accuracy"), other.get("balanced_accuracy_ci")),
                         with_interval(other.get("macro_auc"), other.get("macro_auc_ci"))))
        lines += markdown_table(("evaluation", "split", "images", "balanced accuracy (95 % CI)",
                         "macro AUC (95 % CI)"), rows)
    return "\n".join(lines)


def metrics_tables(facts, metrics: dict, what: str) -> list[str]:
    confidence = metrics.get("confidence", 0.95)
    level = f"{confidence * 100:g} %"
    resamples = metrics.get("n_resamples")
    crop = ", averaged over 36 crops per image" if metrics.get("multi_crop") else ""
    lines = [
        f"On {what} ({count(metrics.get('n'))} images{crop}). Intervals: {level} BCa bootstrap"
        + (f" ({resamples:,} resamples)" if isinstance(resamples, int) and resamples else "") + ".",
        "",
    ]
    rows = [
        ("balanced accuracy (mean recall)", number(metrics.get("balanced_accuracy")),
         dash_interval(metrics.get("balanced_accuracy_ci"))),
        ("macro AUC (one vs rest)", number(metrics.get("macro_auc")), dash_interval(metrics.get("macro_auc_ci"))),
        ("accuracy", number(metrics.get("accuracy")), "-"),
        ("macro F1", number(metrics.get("macro_f1")), "-"),
        ("mean average precision", number(metrics.get("map")), "-"),
    ]
    lines += markdown_table(("metric", "value", f"{level} CI"), rows)
    lines += ["", "Accuracy is dominated by the largest class; balanced accuracy and macro AUC are "
                  "the headline figures.", "", "Per class:", ""]
    per_class = metrics.get("per_class") or {}
    names = list(metrics.get("class_names") or per_class)
    rows = []
    for name in names:
        values = per_class.get(name, {})
        rows.append((facts.class_label(name), count(values.get("support")), number(values.get("precision")),
                     number(values.get("recall")), number(values.get("specificity")),
                     number(values.get("f1")), number(values.get("auc"))))
    lines += markdown_table(("class", "images", "precision", "sensitivity (recall)", "specificity", "F1", "AUC"),
                    rows)
    absent = metrics.get("absent_classes") or []
    if absent:
        lines += ["", f"Classes without test images (no recall or AUC): {', '.join(absent)}."]
    return lines


def two_stage_tables(facts, metrics: dict) -> list[str]:
    """The deployed system's row, then every model's (a two-stage run's table)."""
    deployed = facts.run_summary.get("deployed") or {"variant": facts.task_section.get("deploy_variant"),
                                                    "ensemble": facts.task_section.get("deploy_ensemble")}
    columns = ("accuracy", "balanced_accuracy", "macro_auc", "mel_auc", "sk_auc")
    lines = [f"On the run's held-out test split ({count(metrics.get('n'))} images; {metrics.get('test_source', '')}). "
             f"This export is `{deployed.get('variant')}/{deployed.get('ensemble')}`: the "
             f"{deployed.get('variant')} variant's models combined by the {deployed.get('ensemble')} ensemble, "
             "fitted on the validation predictions.", ""]
    rows = []
    for row in metrics.get("table", []):
        name = f"{row['variant']}/{row['model']}"
        if row["variant"] == deployed.get("variant") and row["model"] == deployed.get("ensemble"):
            name = f"**{name} (this export)**"
        rows.append((name, row.get("kind", ""), *(number(row.get(c)) for c in columns)))
    lines += markdown_table(("model", "kind", "accuracy", "balanced accuracy", "macro AUC", "melanoma AUC",
                             "seb. keratosis AUC"), rows)
    lines += ["", "Intervals for every row are in the evaluation's metrics.json (`details`)."]
    return lines


def input_contract(facts) -> str:
    if facts.task == "two_stage":
        size = facts.image_size or "S"
        return "\n".join([
            "## Input contract",
            "",
            "- **SavedModel:** a batch of raw RGB uint8 images of any size (one size per call). Inside the "
            "graph: the lesion segmenter, the largest segmented component's box plus the margin, the crop "
            f"resized to {size} x {size}, the members and the ensemble.",
            "- **Output:** `probabilities` in this order: " + ", ".join(f"`{c}`" for c in facts.class_names)
            + "; `lesion_box` (top, left, bottom, right) and `lesion_found` (False: no lesion was segmented and "
            "the whole image was used).",
            "",
            "The model takes no patient metadata.",
        ])
    size = facts.image_size or "S"
    lines = [
        "## Input contract",
        "",
        "Images are RGB photographs as decoded from the file (no colour normalisation). The whole "
        f"image is resized to {size} x {size} (bilinear, no crop: the aspect ratio is not kept), as "
        "in evaluation; the backbone's input scaling is inside the model.",
        "",
        "- **SavedModel:** a batch of raw RGB uint8 images of any size; resizing and scaling happen "
        "inside the graph" + ("; age, sex and site as plain values per image (below)." if facts.metadata
                              else "."),
        f"- **TFLite:** float32 `[1, {size}, {size}, 3]` in 0..255, already resized as above (no scaling).",
        f"- **Keras (`best.keras`):** `{{\"image\": float32[B, {size}, {size}, 3] in 0..255"
        + (', "metadata": float32[B, F]' if facts.metadata else "") + "}`.",
        "- **Output:** class probabilities in this order: "
        + ", ".join(f"`{c}`" for c in facts.class_names) + ".",
    ]
    if not facts.metadata:
        lines += ["", "The model takes no patient metadata."]
        return "\n".join(lines)
    features = facts.preprocessing.get("metadata_features") or []
    sites = facts.metadata.get("sites") or []
    from skinkeras.data.metadata import SEXES

    lines += [
        "",
        "Patient metadata (any value may be missing):",
        "",
        f"- **age** in years; normalised as (age - {number(facts.metadata.get('age_mean'), 2)}) / "
        f"{number(facts.metadata.get('age_std'), 2)} (mean and standard deviation of the training split); "
        "missing: NaN (the encoding has a missing flag).",
        f"- **sex**: {', '.join(SEXES)}.",
        f"- **site** (anatomical location): {', '.join(sites)}. A site outside this list is "
        "encoded as unknown.",
        "",
        f"The encoded vector ({len(features)} float32 values, what the Keras and TFLite models take): "
        + ", ".join(f"`{f}`" for f in features) + ".",
    ]
    return "\n".join(lines)


def decision_rule(facts) -> str:
    """The run's decision rule for balanced accuracy ("" for a run without one)."""
    rule = facts.decision_rule
    if not rule:
        return ""
    prior = rule.get("prior") or []
    names = facts.class_names if len(facts.class_names) == len(prior) else [str(k) for k in range(len(prior))]
    lines = [
        "## Decision rule",
        "",
        f"The probabilities every output returns are the softmax divided by the training prior to the power "
        f"tau = {number(rule.get('tau'), 2)} and renormalised (p * prior^-tau / sum), which favours the rare "
        f"classes for balanced accuracy. tau was chosen on the {rule.get('fitted_on', 'val')} split: its "
        f"balanced accuracy {number(rule.get('bacc_before'))} with the plain softmax, "
        f"{number(rule.get('bacc_after'))} with the rule. The SavedModel applies it inside the graph; a "
        "TFLite model returns the plain softmax and the app applies the rule (metadata_encoding.json, "
        "`decision_rule`); `skinkeras evaluate` and `skinkeras predict` apply it.",
        "",
    ]
    lines += markdown_table(("class", "training prior", "factor prior^-tau"),
                            [(f"`{name}`", number(p), number(max(p, 1e-6) ** -float(rule.get("tau", 0.0)), 3))
                             for name, p in zip(names, prior)])
    return "\n".join(lines)


def export_section(facts) -> str:
    info = dict(facts.export_info)
    lines = ["## This export", ""]
    rows = []
    for key in ("format", "quantization"):
        if key in info:
            rows.append((key, plain(info.pop(key))))
    files = info.pop("files", None)
    verification = info.pop("verification", None)
    rows += [(str(key), plain(value)) for key, value in info.items()]
    if rows:
        lines += markdown_table(("property", "value"), rows)
    if files:
        lines += ["", "Files:", ""]
        lines += markdown_table(("file", "size"), [(f"`{name}`", size) for name, size in export_files(facts, files)])
    if verification:
        against = verification.get("compared_with", "the Keras model") if isinstance(verification, dict) else "the Keras model"
        lines += ["", f"Verification against {against}:", ""]
        if isinstance(verification, dict):
            items = dict(verification)
            passed = items.pop("passed", None)
            if passed is not None:
                lines += [f"**{'PASSED' if passed else 'FAILED'}**", ""]
            lines += markdown_table(("check", "result"), [(str(k), plain(v)) for k, v in items.items()])
        else:
            lines.append(plain(verification))
    return "\n".join(lines)


def export_files(facts, files):
    entries = files.items() if isinstance(files, dict) else ((str(f), f) for f in files)
    for name, value in entries:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield name, size(value)
            continue
        path = Path(value)
        path = path if path.is_absolute() else facts.out_dir / path
        yield name, size(directory_size(path)) if path.exists() else "missing"
