"""What a model card says about a run, read from its directory (no model is loaded)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

from skinkeras.engine.run_directory import RunDirectory
from skinkeras.errors import SkinkerasError
from skinkeras.evaluation.formatting import markdown_table
from skinkeras.export.model_card.texts import CLASS_DESCRIPTIONS

TEST_SPLIT = "test"


@dataclasses.dataclass
class RunFacts:
    """The run's config sections, preprocessing, summary, split rows and evaluations."""

    run: RunDirectory
    out_dir: Path
    config: dict
    preprocessing: dict
    run_summary: dict
    export_info: dict | None
    split_rows: list | None
    test_metrics: dict | None
    test_metrics_error: str | None
    other_evaluations: list

    @classmethod
    def read(cls, run_dir, out_dir, export_info=None) -> "RunFacts":
        run = RunDirectory(run_dir)
        if not run.path.is_dir():
            raise SkinkerasError(f"no run directory at {run.path}")
        config = _read_json(run.config) or {}
        test = run.evaluation(TEST_SPLIT).metrics
        metrics, error = _read_metrics(test, config.get("task", "classification"))
        return cls(run=run, out_dir=Path(out_dir), config=config, preprocessing=run.read_preprocessing(),
                   run_summary=_read_json(run.summary) or {}, export_info=export_info,
                   split_rows=_read_split_rows(run.split), test_metrics=metrics, test_metrics_error=error,
                   other_evaluations=_other_evaluations(run))

    # The config's sections (config.json of any age).
    task = property(lambda self: self.config.get("task", "classification"))
    data = property(lambda self: self.config.get("data", {}))
    model = property(lambda self: self.config.get("model", {}))
    train = property(lambda self: self.config.get("train", {}))
    task_section = property(lambda self: self.config.get(self.task, {}))

    @property
    def split_section(self) -> dict:
        legacy = {"fractions": self.data.get("split_fractions"), "seed": self.data.get("split_seed")}
        return self.config.get("split") or legacy

    @property
    def decision_rule(self) -> dict | None:
        """decision_rule.json of the run (None: the plain softmax, older runs included)."""
        return _read_json(self.run.decision_rule)

    @property
    def class_names(self) -> list:
        return list(self.preprocessing.get("class_names") or [])

    @property
    def dataset(self) -> str:
        return self.preprocessing.get("dataset") or self.data.get("dataset") or "unknown"

    @property
    def image_size(self):
        return self.preprocessing.get("image_size") or self.data.get("image_size")

    @property
    def metadata(self):
        return self.preprocessing.get("metadata")

    @property
    def skipped(self):
        return _read_json(self.run.skipped)

    def class_label(self, name: str) -> str:
        description = CLASS_DESCRIPTIONS.get(name) if self.dataset == "ham10000" else None
        return f"{name} ({description})" if description else name


def _read_json(path: Path):
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SkinkerasError(f"{path} is not valid JSON: {error}") from None


def _read_metrics(path: Path, task: str = "classification"):
    """(metrics, None), (None, None) when absent, or (None, reason) when unreadable: a card is
    still written, saying so. A two-stage run's metrics are its table (one row per model)."""
    if not path.exists():
        return None, None
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return None, f"{path}: {error}"
    wanted = "table" if task == "two_stage" else "balanced_accuracy"
    if not isinstance(metrics, dict) or wanted not in metrics:
        return None, f"{path}: no {wanted} in it"
    return metrics, None


def _other_evaluations(run: RunDirectory) -> list[tuple[str, dict]]:
    found = []
    for evaluation in run.evaluations():
        if evaluation.path == run.evaluation(TEST_SPLIT).path or not evaluation.metrics.exists():
            continue
        metrics, _ = _read_metrics(evaluation.metrics)
        if metrics is not None:
            found.append((evaluation.path.name, metrics))
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


def split_table(rows, class_names) -> list[str]:
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
    return markdown_table(header, body)


def count_parameters(path: Path) -> int | None:
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


def describe_dataset(name: str) -> str:
    try:
        from skinkeras.data.registry import describe_dataset

        return describe_dataset(name)
    except Exception:  # an unregistered dataset name is still worth a card
        return ""
