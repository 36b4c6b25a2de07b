"""The model card (Markdown) written beside every export (after Mitchell et al. 2019, "Model Cards
for Model Reporting").

Everything comes from the run directory, without loading the model: config.json (backbone, head,
dataset), preprocessing.json (classes, input size, metadata encoding), split.csv (image and lesion
counts per split and class), run.json (epochs), best.keras's weights file (parameter count) and the
evaluation `skinkeras evaluate` wrote (evaluation_test/metrics.json, with BCa intervals). What the
export adds (format, quantisation, files, verification) comes in `export_info`.

Example:
    >>> write_model_card("runs/ham10000_mnv3l_128", "saved_models/mnv3l",
    ...                  export_info={"format": "saved_model"})  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
from pathlib import Path

from skinkeras.errors import SkinkerasError

MODEL_CARD_FILE = "MODEL_CARD.md"
TEST_METRICS = Path("evaluation_test") / "metrics.json"

# HAM10000 diagnosis codes (Tschandl et al. 2018), for readers who do not know them.
CLASS_DESCRIPTIONS = {
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesion",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}

DATASET_BIAS = {
    "ham10000": (
        "HAM10000 comes from two centres (Vienna, Austria and Queensland, Australia): mostly "
        "fair-skinned patients of European descent. Performance on darker skin types is unknown "
        "and likely lower. About two thirds of its images are melanocytic nevi."
    ),
    "isic2017": (
        "The ISIC 2017 archive images come mostly from fair-skinned patients (USA, Europe, "
        "Australia); performance on darker skin types is unknown."
    ),
}

WARNING = (
    "> **Research use only. Not for diagnosis.** This model is not a medical device and has not\n"
    "> been clinically validated. Its output must not be used to diagnose, exclude or treat any\n"
    "> condition. Every suspicious skin lesion must be examined by a qualified clinician."
)


def write_model_card(run_dir, out_dir, *, export_info: dict | None = None) -> Path:
    """Writes `out_dir/MODEL_CARD.md` describing the run's model; returns its path.

    Args:
        run_dir: a training run directory (config.json, preprocessing.json, split.csv, ...).
        out_dir: where the card goes (created if needed); usually the export folder.
        export_info: what the export knows, all keys optional: "format", "quantization",
            "files" (a list of paths relative to `out_dir`, or a dict name -> size in bytes or
            path), "verification" (a dict of check -> value; "passed" is shown first), and any
            other key -> value, shown as rows.
    """
    from skinkeras.evaluation.run_evaluation import load_run_preprocessing

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SkinkerasError(f"no run directory at {run_dir}")
    preprocessing = load_run_preprocessing(run_dir)
    config = _read_json(run_dir / "config.json") or {}
    run_summary = _read_json(run_dir / "run.json") or {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    card = _ModelCard(run_dir, out_dir, config, preprocessing, run_summary, export_info)
    text = card.render()
    path = out_dir / MODEL_CARD_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)  # a reader never sees half a card
    return path


class _ModelCard:
    def __init__(self, run_dir, out_dir, config, preprocessing, run_summary, export_info):
        self.run_dir = run_dir
        self.out_dir = out_dir
        self.data = config.get("data", {})
        self.model = config.get("model", {})
        self.train = config.get("train", {})
        self.experiment = config
        self.preprocessing = preprocessing
        self.run_summary = run_summary
        self.export_info = export_info
        self.class_names = list(preprocessing.get("class_names") or [])
        self.dataset = preprocessing.get("dataset") or self.data.get("dataset") or "unknown"
        self.image_size = preprocessing.get("image_size") or self.data.get("image_size")
        self.metadata = preprocessing.get("metadata")
        self.split_rows = _read_split_rows(run_dir / "split.csv")
        self.test_metrics, self.test_metrics_error = _read_metrics(run_dir / TEST_METRICS)
        self.other_evaluations = _other_evaluations(run_dir)

    def render(self) -> str:
        sections = [
            self.header(),
            self.intended_use(),
            self.model_section(),
            self.training_data(),
            self.evaluation(),
            self.input_contract(),
        ]
        if self.export_info:
            sections.append(self.export_section())
        sections.append(self.limitations())
        return "\n\n".join(s.strip("\n") for s in sections) + "\n"

    # ---- sections -------------------------------------------------------------------------------
    def header(self) -> str:
        from skinkeras import __version__

        written = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        name = self.experiment.get("name") or self.run_dir.name
        lines = [
            f"# Model card: {name}",
            "",
            WARNING,
            "",
            f"Run directory `{self.run_dir}`; card written {written} by skinkeras {__version__}.",
        ]
        if self.experiment.get("description"):
            lines += ["", str(self.experiment["description"]).strip()]
        return "\n".join(lines)

    def intended_use(self) -> str:
        classes = ", ".join(self._class_label(c) for c in self.class_names) or "unknown"
        return "\n".join([
            "## Intended use",
            "",
            "- **For:** research on automatic classification of dermoscopic images of skin lesions, "
            "teaching, and benchmarking against published systems.",
            f"- **Output:** a probability for each of the {len(self.class_names)} training classes "
            f"({classes}). The probabilities always sum to 1, also for images that belong to "
            "none of these classes: the model cannot answer \"none of these\".",
            "- **Not for:** diagnosis, screening, triage or treatment decisions; use by patients; "
            "images other than dermoscopic images of a single lesion.",
            "- **Heatmaps** (`skinkeras predict --heatmap`) show where the model looked, not why, "
            "and are no evidence that a prediction is right.",
        ])

    def model_section(self) -> str:
        head = self.model.get("head", "unknown")
        head_text = head
        if head == "soft_attention":
            head_text += (f" ({self.model.get('attention_heads', '?')} attention heads, "
                          f"gamma init {self.model.get('attention_gamma_init', '?')})")
        branch = self.model.get("metadata_branch") if self.metadata else None
        if branch:
            features = self.preprocessing.get("metadata_features") or []
            branch_text = f"{branch} ({len(features)} input features: age, sex, site)"
        else:
            branch_text = "none (image only)"
        weights = self.model.get("weights") or ""
        weights_text = weights if weights else "none: trained from random initialisation"
        size = f"{self.image_size} x {self.image_size} RGB" if self.image_size else "unknown"
        rows = [
            ("backbone", self.model.get("backbone", "unknown")),
            ("head", head_text),
            ("metadata branch", branch_text),
            ("input size", size),
            ("initial backbone weights", weights_text),
        ]
        params = _count_parameters(self.run_dir / "best.keras")
        if params is not None:
            rows.append(("parameters", f"{params:,} (weights in best.keras)"))
        if self.train:
            rows.append(("optimiser / loss", f"{self.train.get('optimizer', '?')}, lr "
                         f"{self.train.get('learning_rate', '?')} / {self.train.get('loss', '?')}, "
                         f"class weights {self.train.get('class_weights', '?')}"))
        summary = self.run_summary
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
        return "\n".join(["## Model", "", *_table(("property", "value"), rows)])

    def training_data(self) -> str:
        lines = ["## Training data", ""]
        description = _describe_dataset(self.dataset)
        lines.append(f"- **Dataset:** `{self.dataset}`" + (f": {description}" if description else ""))
        if self.data.get("root"):
            lines.append(f"- **Root:** `{self.data['root']}`")
        fractions = self.data.get("split_fractions")
        split_text = ("- **Split grouped by lesion**: all images of one lesion are in the same part, so "
                      "no lesion seen in training is in the validation or test part; "
                      "stratified by class")
        if fractions:
            split_text += (f"; fractions train / val / test {' / '.join(str(f) for f in fractions)}, "
                           f"seed {self.data.get('split_seed', '?')}")
        lines.append(split_text + ".")
        if self.data.get("limit"):
            lines.append(f"- **Smoke run:** training used a class-stratified sample of about "
                         f"{self.data['limit']} training images (`data.limit`); the counts below are the "
                         "whole split.")
        if self.data.get("use_metadata") is False or not self.metadata:
            lines.append("- Patient metadata was not used.")
        skipped = _read_json(self.run_dir / "skipped.json")
        if skipped:
            lines.append(f"- {len(skipped)} dataset problems were recorded (images left out or fixed): "
                         f"see `skipped.json` in the run directory.")
        lines.append("")
        if self.split_rows is None:
            lines.append("No split.csv in the run directory: image counts unknown.")
            return "\n".join(lines)
        lines.append("Images (lesions) per class and split:")
        lines.append("")
        lines += _split_table(self.split_rows, self.class_names)
        return "\n".join(lines)

    def evaluation(self) -> str:
        lines = ["## Evaluation", ""]
        metrics = self.test_metrics
        if metrics is None:
            if self.test_metrics_error:
                lines.append(f"The evaluation file could not be read ({self.test_metrics_error}).")
            lines.append(
                f"**Not evaluated yet:** run `skinkeras evaluate {self.run_dir} --data-root DIR` "
                "to measure it on the run's held-out test split (writes "
                f"`{TEST_METRICS.as_posix()}`), then export again.")
        else:
            lines += self._metrics_tables(metrics, "the run's held-out test split")
        if self.other_evaluations:
            lines += ["", "Other evaluations found in the run directory:", ""]
            rows = []
            for name, other in self.other_evaluations:
                rows.append((f"`{name}`", other.get("split", "?"), _count(other.get("n")),
                             _with_ci(other.get("balanced_accuracy"), other.get("balanced_accuracy_ci")),
                             _with_ci(other.get("macro_auc"), other.get("macro_auc_ci"))))
            lines += _table(("evaluation", "split", "images", "balanced accuracy (95 % CI)",
                             "macro AUC (95 % CI)"), rows)
        return "\n".join(lines)

    def _metrics_tables(self, metrics: dict, what: str) -> list[str]:
        confidence = metrics.get("confidence", 0.95)
        level = f"{confidence * 100:g} %"
        resamples = metrics.get("n_resamples")
        crop = ", averaged over 36 crops per image" if metrics.get("multi_crop") else ""
        lines = [
            f"On {what} ({_count(metrics.get('n'))} images{crop}). Intervals: {level} BCa bootstrap"
            + (f" ({resamples:,} resamples)" if isinstance(resamples, int) and resamples else "") + ".",
            "",
        ]
        rows = [
            ("balanced accuracy (mean recall)", _fmt(metrics.get("balanced_accuracy")),
             _fmt_ci(metrics.get("balanced_accuracy_ci"))),
            ("macro AUC (one vs rest)", _fmt(metrics.get("macro_auc")), _fmt_ci(metrics.get("macro_auc_ci"))),
            ("accuracy", _fmt(metrics.get("accuracy")), "-"),
            ("macro F1", _fmt(metrics.get("macro_f1")), "-"),
            ("mean average precision", _fmt(metrics.get("map")), "-"),
        ]
        lines += _table(("metric", "value", f"{level} CI"), rows)
        lines += ["", "Accuracy is dominated by the largest class; balanced accuracy and macro AUC are "
                      "the headline figures.", "", "Per class:", ""]
        per_class = metrics.get("per_class") or {}
        names = list(metrics.get("class_names") or per_class)
        rows = []
        for name in names:
            values = per_class.get(name, {})
            rows.append((self._class_label(name), _count(values.get("support")), _fmt(values.get("precision")),
                         _fmt(values.get("recall")), _fmt(values.get("specificity")),
                         _fmt(values.get("f1")), _fmt(values.get("auc"))))
        lines += _table(("class", "images", "precision", "sensitivity (recall)", "specificity", "F1", "AUC"),
                        rows)
        absent = metrics.get("absent_classes") or []
        if absent:
            lines += ["", f"Classes without test images (no recall or AUC): {', '.join(absent)}."]
        return lines

    def input_contract(self) -> str:
        size = self.image_size or "S"
        lines = [
            "## Input contract",
            "",
            "Images are RGB photographs as decoded from the file (no colour normalisation). The whole "
            f"image is resized to {size} x {size} (bilinear, no crop: the aspect ratio is not kept), as "
            "in evaluation; the backbone's input scaling is inside the model.",
            "",
            "- **SavedModel:** a batch of raw RGB uint8 images of any size; resizing and scaling happen "
            "inside the graph" + ("; age, sex and site as plain values per image (below)." if self.metadata
                                  else "."),
            f"- **TFLite:** float32 `[1, {size}, {size}, 3]` in 0..255, already resized as above (no scaling).",
            f"- **Keras (`best.keras`):** `{{\"image\": float32[B, {size}, {size}, 3] in 0..255"
            + (', "metadata": float32[B, F]' if self.metadata else "") + "}`.",
            "- **Output:** class probabilities in this order: "
            + ", ".join(f"`{c}`" for c in self.class_names) + ".",
        ]
        if not self.metadata:
            lines += ["", "The model takes no patient metadata."]
            return "\n".join(lines)
        features = self.preprocessing.get("metadata_features") or []
        sites = self.metadata.get("sites") or []
        from skinkeras.data.metadata import SEXES

        lines += [
            "",
            "Patient metadata (any value may be missing):",
            "",
            f"- **age** in years; normalised as (age - {_fmt(self.metadata.get('age_mean'), 2)}) / "
            f"{_fmt(self.metadata.get('age_std'), 2)} (mean and standard deviation of the training split); "
            "missing: NaN (the encoding has a missing flag).",
            f"- **sex**: {', '.join(SEXES)}.",
            f"- **site** (anatomical location): {', '.join(sites)}. A site outside this list is "
            "encoded as unknown.",
            "",
            f"The encoded vector ({len(features)} float32 values, what the Keras and TFLite models take): "
            + ", ".join(f"`{f}`" for f in features) + ".",
        ]
        return "\n".join(lines)

    def export_section(self) -> str:
        info = dict(self.export_info)
        lines = ["## This export", ""]
        rows = []
        for key in ("format", "quantization"):
            if key in info:
                rows.append((key, _plain(info.pop(key))))
        files = info.pop("files", None)
        verification = info.pop("verification", None)
        rows += [(str(key), _plain(value)) for key, value in info.items()]
        if rows:
            lines += _table(("property", "value"), rows)
        if files:
            lines += ["", "Files:", ""]
            lines += _table(("file", "size"), [(f"`{name}`", size) for name, size in self._files(files)])
        if verification:
            lines += ["", "Verification against the Keras model:", ""]
            if isinstance(verification, dict):
                items = dict(verification)
                passed = items.pop("passed", None)
                if passed is not None:
                    lines += [f"**{'PASSED' if passed else 'FAILED'}**", ""]
                lines += _table(("check", "result"), [(str(k), _plain(v)) for k, v in items.items()])
            else:
                lines.append(_plain(verification))
        return "\n".join(lines)

    def _files(self, files):
        entries = files.items() if isinstance(files, dict) else ((str(f), f) for f in files)
        for name, value in entries:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield name, _size(value)
                continue
            path = Path(value)
            path = path if path.is_absolute() else self.out_dir / path
            yield name, _size(_path_size(path)) if path.exists() else "missing"

    def limitations(self) -> str:
        items = []
        if not self.model.get("weights"):
            items.append("**Trained from scratch:** the backbone started from random weights (no ImageNet "
                         "pre-training); published results use pre-trained backbones and are higher.")
        bias = DATASET_BIAS.get(self.dataset)
        items.append("**Dataset bias:** " + (bias or f"the training set (`{self.dataset}`) reflects the "
                                              "patients, devices and clinics it was collected from."))
        items.append("**Dermoscopic images only:** the model was trained on dermoscopy; clinical "
                     "(close-up) or smartphone photos without a dermatoscope are outside what it has seen.")
        items.append(f"**Classes limited to the {len(self.class_names)} training classes:** any other "
                     "lesion (or a non-lesion image) still receives one of these labels, possibly with "
                     "high confidence.")
        external = [name for name, metrics in self.other_evaluations if metrics.get("split") == "all"]
        if external:
            items.append("**External validation:** evaluated on another set (" + ", ".join(
                f"`{name}`" for name in external) + "); check that it comes from other clinics.")
        else:
            items.append("**No external validation:** every figure above comes from held-out images of "
                         "the same dataset (same clinics, devices and population). Expect lower performance "
                         f"elsewhere; measure it with `skinkeras evaluate {self.run_dir} --data-root OTHER "
                         "--split all`.")
        items.append("**Lesion-grouped split:** the held-out images show lesions never seen in training, so "
                     "the figures are not inflated by other images of the same lesion; patients with "
                     "several lesions may still appear in more than one part.")
        n = (self.test_metrics or {}).get("n")
        if isinstance(n, int) and n < 500:
            items.append(f"**Small test set:** {n} images; rare classes have few examples and wide "
                         "intervals.")
        if self.export_info and self.export_info.get("quantization") not in (None, "float32", "none"):
            items.append("**Quantised model:** its outputs differ slightly from the evaluated Keras model; "
                         "see the verification above.")
        return "\n".join(["## Known limitations", ""] + [f"- {item}" for item in items])

    def _class_label(self, name: str) -> str:
        description = CLASS_DESCRIPTIONS.get(name) if self.dataset == "ham10000" else None
        return f"{name} ({description})" if description else name


# ---- reading the run directory ------------------------------------------------------------------
def _read_json(path: Path):
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SkinkerasError(f"{path} is not valid JSON: {error}") from None


def _read_metrics(path: Path):
    """(metrics, None), (None, None) when absent, or (None, reason) when unreadable: a card is
    still written, saying so."""
    if not path.exists():
        return None, None
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return None, f"{path}: {error}"
    if not isinstance(metrics, dict) or "balanced_accuracy" not in metrics:
        return None, f"{path}: no balanced_accuracy in it"
    return metrics, None


def _other_evaluations(run_dir: Path) -> list[tuple[str, dict]]:
    found = []
    for path in sorted(run_dir.glob("evaluation_*/metrics.json")):
        if path.parent.name == TEST_METRICS.parent.name:
            continue
        metrics, _ = _read_metrics(path)
        if metrics is not None:
            found.append((path.parent.name, metrics))
    return found


def _read_split_rows(path: Path):
    if not path.exists():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"image_id", "lesion_id", "label", "split"} - set(rows[0] if rows else {})
    if rows and missing:
        raise SkinkerasError(f"{path} lacks the columns {sorted(missing)}")
    return rows


def _split_table(rows, class_names) -> list[str]:
    parts = [p for p in ("train", "val", "test") if any(r["split"] == p for r in rows)]
    parts += sorted({r["split"] for r in rows} - set(parts) - {""})
    unused = any(r["split"] == "" for r in rows)
    labels = list(class_names) + sorted({r["label"] for r in rows} - set(class_names))

    def cell(label=None, part=None):
        chosen = [r for r in rows if (label is None or r["label"] == label) and (part is None or r["split"] == part)]
        lesions = {r["lesion_id"] or r["image_id"] for r in chosen}
        return f"{len(chosen):,} ({len(lesions):,})"

    header = ("class", *parts, "total") + (("not used",) if unused else ())
    body = []
    for label in labels:
        body.append((label, *(cell(label, p) for p in parts), cell(label))
                    + ((cell(label, ""),) if unused else ()))
    body.append(("**all**", *(cell(None, p) for p in parts), cell()) + ((cell(None, ""),) if unused else ()))
    return _table(header, body)


def _count_parameters(path: Path) -> int | None:
    """Weights in a .keras file's model.weights.h5, optimizer state excluded; None if unreadable."""
    if not path.exists():
        return None
    try:
        import io
        import zipfile

        import h5py

        with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as handle:
            weights = h5py.File(io.BytesIO(handle.read()), "r")
        total = 0

        def visit(name, item):
            nonlocal total
            if isinstance(item, h5py.Dataset) and not name.startswith("optimizer"):
                total += int(item.size)

        weights.visititems(visit)
        return total
    except Exception:  # a card without a parameter count beats no card
        return None


def _describe_dataset(name: str) -> str:
    try:
        from skinkeras.data.registry import describe_dataset

        return describe_dataset(name)
    except Exception:  # an unregistered dataset name is still worth a card
        return ""


# ---- formatting ---------------------------------------------------------------------------------
def _table(header, rows) -> list[str]:
    def clean(value):
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(clean(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(clean(v) for v in row) + " |" for row in rows]
    return lines


def _is_number(value) -> bool:
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _is_number(value) else "n/a"


def _fmt_ci(ci) -> str:
    if not ci or len(ci) != 2 or not all(_is_number(v) for v in ci):
        return "n/a"
    return f"{ci[0]:.3f} - {ci[1]:.3f}"


def _with_ci(value, ci) -> str:
    interval = _fmt_ci(ci)
    return _fmt(value) + (f" ({interval})" if interval != "n/a" else "")


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "?"


def _plain(value) -> str:
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()  # NumPy scalars from verification code
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, float) for v in value):
        return "[" + ", ".join(f"{v:.6g}" for v in value) + "]"  # e.g. a confidence interval
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def _size(num_bytes) -> str:
    num_bytes = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:,.0f} {unit}" if unit == "B" else f"{num_bytes:,.2f} {unit}"
        num_bytes /= 1024


def _path_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
