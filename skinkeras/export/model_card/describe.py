"""The model card's sections on what the model is: header, intended use, model, training data,
known limitations."""

from __future__ import annotations

import datetime

from skinkeras.evaluation.formatting import markdown_table
from skinkeras.export.model_card.facts import (
    count_parameters,
    describe_dataset,
    split_table,
)
from skinkeras.export.model_card.texts import DATASET_BIAS, WARNING


def header(facts) -> str:
    from skinkeras import __version__

    written = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    name = facts.config.get("name") or facts.run.path.name
    lines = [
        f"# Model card: {name}",
        "",
        WARNING,
        "",
        f"Run directory `{facts.run.path}`; card written {written} by skinkeras {__version__}.",
    ]
    if facts.config.get("description"):
        lines += ["", str(facts.config["description"]).strip()]
    return "\n".join(lines)


def intended_use(facts) -> str:
    classes = ", ".join(facts.class_label(c) for c in facts.class_names) or "unknown"
    return "\n".join([
        "## Intended use",
        "",
        "- **For:** research on automatic classification of dermoscopic images of skin lesions, "
        "teaching, and benchmarking against published systems.",
        f"- **Output:** a probability for each of the {len(facts.class_names)} training classes "
        f"({classes}). The probabilities always sum to 1, also for images that belong to "
        "none of these classes: the model cannot answer \"none of these\".",
        "- **Not for:** diagnosis, screening, triage or treatment decisions; use by patients; "
        "images other than dermoscopic images of a single lesion.",
        "- **Heatmaps** (`skinkeras predict --heatmap`) show where the model looked, not why, "
        "and are no evidence that a prediction is right.",
    ])


def model_section(facts) -> str:
    head = facts.model.get("head", "unknown")
    head_text = head
    if head == "soft_attention":
        head_text += (f" ({facts.model.get('attention_heads', '?')} attention heads, "
                      f"gamma init {facts.model.get('attention_gamma_init', '?')})")
    branch = facts.model.get("metadata_branch") if facts.metadata else None
    if branch:
        features = facts.preprocessing.get("metadata_features") or []
        branch_text = f"{branch} ({len(features)} input features: age, sex, site)"
    else:
        branch_text = "none (image only)"
    weights = facts.model.get("weights") or ""
    weights_text = weights if weights else "none: trained from random initialisation"
    fallback = (facts.run_summary.get("backbone_weights") or {}).get("reason")
    if fallback and not weights:
        weights_text += f" (ImageNet weights were asked for but could not be had: {fallback})"
    size = f"{facts.image_size} x {facts.image_size} RGB" if facts.image_size else "unknown"
    rows = [
        ("backbone", facts.model.get("backbone", "unknown")),
        ("head", head_text),
        ("metadata branch", branch_text),
        ("input size", size),
        ("initial backbone weights", weights_text),
    ]
    if facts.task == "two_stage":
        section = facts.task_section
        deployed = facts.run_summary.get("deployed") or {}
        rows[:3] = [("members", ", ".join(section.get("backbones", [])) + f" (head se, hidden units "
                     f"{section.get('hidden_units', '?')}), one per variant: "
                     + ", ".join(facts.preprocessing.get("variants", []))),
                    ("deployed", f"{deployed.get('variant', '?')} variant, {deployed.get('ensemble', '?')} ensemble"),
                    ("lesion crop", f"U-Net segmenter, largest component's box + {section.get('crop_margin', '?')} "
                     "margin")]
    params = count_parameters(facts.run.best_model)
    if params is not None:
        rows.append(("parameters", f"{params:,} (weights in best.keras)"))
    if facts.train:
        rows.append(("optimiser / loss", f"{facts.train.get('optimizer', '?')}, lr "
                     f"{facts.train.get('learning_rate', '?')} / {facts.train.get('loss', '?')}, "
                     f"class weights {facts.train.get('class_weights', '?')}"))
    summary = facts.run_summary
    if summary.get("epochs_done") is not None:
        epochs = f"{summary['epochs_done']} of {summary.get('epochs_planned', '?')}"
        if summary.get("best_epoch") is not None:
            epochs += f"; the exported model is the best epoch, {summary['best_epoch']}"
        rows.append(("epochs", epochs))
    tuned = summary.get("quantization_aware")
    if tuned:
        rows.append(("int8 fine-tuning", f"quantization-aware, {tuned.get('epochs', '?')} epochs at lr "
                     f"{tuned.get('learning_rate', '?')} from {tuned.get('source_run', '?')} (BatchNorm frozen"
                     f"{', split hard swish' if tuned.get('split_hard_swish') else ''}); epoch 0 is that run's model"))
    if summary.get("train_seconds_total") is not None:
        rows.append(("training time", f"{summary['train_seconds_total'] / 3600:.2f} h "
                     f"({summary.get('precision', '?')} precision)"))
    return "\n".join(["## Model", "", *markdown_table(("property", "value"), rows)])


def training_data(facts) -> str:
    lines = ["## Training data", ""]
    description = describe_dataset(facts.dataset)
    lines.append(f"- **Dataset:** `{facts.dataset}`" + (f": {description}" if description else ""))
    if facts.data.get("root"):
        lines.append(f"- **Root:** `{facts.data['root']}`")
    fractions = facts.split_section.get("fractions")
    split_text = ("- **Split grouped by lesion**: all images of one lesion are in the same part, so "
                  "no lesion seen in training is in the validation or test part; "
                  "stratified by class")
    if facts.task == "two_stage" and facts.preprocessing.get("test_source"):
        split_text += f"; the test part is {facts.preprocessing['test_source']}, validation the release's"
    elif facts.split_section.get("folds"):
        split_text += f"; {facts.split_section['folds']}-fold cross-validation"
    elif fractions:
        split_text += (f"; fractions train / val / test {' / '.join(str(f) for f in fractions)}, "
                       f"seed {facts.split_section.get('seed', '?')}")
    lines.append(split_text + ".")
    if facts.data.get("limit"):
        lines.append(f"- **Smoke run:** training used a class-stratified sample of about "
                     f"{facts.data['limit']} training images (`data.limit`); the counts below are the "
                     "whole split.")
    if facts.data.get("use_metadata") is False or not facts.metadata:
        lines.append("- Patient metadata was not used.")
    skipped = facts.skipped
    if skipped:
        lines.append(f"- {len(skipped)} dataset problems were recorded (images left out or fixed): "
                     f"see `skipped.json` in the run directory.")
    lines.append("")
    if facts.split_rows is None:
        lines.append("No split.csv in the run directory: image counts unknown.")
        return "\n".join(lines)
    lines.append("Images (lesions) per class and split:")
    lines.append("")
    lines += split_table(facts.split_rows, facts.class_names)
    return "\n".join(lines)


def limitations(facts) -> str:
    items = []
    if not facts.model.get("weights"):
        items.append("**Trained from scratch:** the backbone started from random weights (no ImageNet "
                     "pre-training); published results use pre-trained backbones and are higher.")
    bias = DATASET_BIAS.get(facts.dataset)
    items.append("**Dataset bias:** " + (bias or f"the training set (`{facts.dataset}`) reflects the "
                                          "patients, devices and clinics it was collected from."))
    items.append("**Dermoscopic images only:** the model was trained on dermoscopy; clinical "
                 "(close-up) or smartphone photos without a dermatoscope are outside what it has seen.")
    items.append(f"**Classes limited to the {len(facts.class_names)} training classes:** any other "
                 "lesion (or a non-lesion image) still receives one of these labels, possibly with "
                 "high confidence.")
    external = [name for name, metrics in facts.other_evaluations if metrics.get("split") == "all"]
    if external:
        items.append("**External validation:** evaluated on another set (" + ", ".join(
            f"`{name}`" for name in external) + "); check that it comes from other clinics.")
    else:
        items.append("**No external validation:** every figure above comes from held-out images of "
                     "the same dataset (same clinics, devices and population). Expect lower performance "
                     f"elsewhere; measure it with `skinkeras evaluate {facts.run.path} --data-root OTHER "
                     "--split all`.")
    items.append("**Lesion-grouped split:** the held-out images show lesions never seen in training, so "
                 "the figures are not inflated by other images of the same lesion; patients with "
                 "several lesions may still appear in more than one part.")
    n = (facts.test_metrics or {}).get("n")
    if isinstance(n, int) and n < 500:
        items.append(f"**Small test set:** {n} images; rare classes have few examples and wide "
                     "intervals.")
    quantization = str((facts.export_info or {}).get("quantization") or "none")
    if facts.export_info and not quantization.startswith(("none", "float32")):
        items.append("**Quantised model:** its outputs differ slightly from the evaluated Keras model; "
                     "see the verification above.")
        if quantization == "int8":
            items.append(int8_speed_note(facts.model.get("backbone", "")))
    return "\n".join(["## Known limitations", ""] + [f"- {item}" for item in items])


# Backbones whose int8 graph LiteRT's XNNPACK (2.3.0) cannot run whole: HARD_SWISH stays outside it.
HARD_SWISH_BACKBONES = ("MobileNetV3Small", "MobileNetV3Large")


def int8_speed_note(backbone: str) -> str:
    """What an int8 export of `backbone` is for: the size option, or the phone model."""
    if backbone in HARD_SWISH_BACKBONES:
        return ("**int8 is the size option here:** about 1/3.5 of the float32 file, but slower than "
                "float32 on LiteRT's CPU delegate (XNNPACK runs int8 hard swish outside it, measured "
                "~3x at 1 thread). For speed ship the float32 export, or train the minimalistic "
                "backbone (`ham10000_phone_int8`), whose int8 graph runs whole in XNNPACK.")
    return ("**int8 speed depends on the CPU:** measure it on the target with `skinkeras bench export`; "
            "int8 kernels gain most on ARM (dot-product instructions) and on x86 with VNNI.")
