"""The model card (Markdown) written beside every export (after Mitchell et al. 2019, "Model Cards
for Model Reporting").

Everything comes from the run directory, without loading the model (`facts.RunFacts`: config.json,
preprocessing.json, split.csv, run.json, best.keras's weights file for the parameter count, and
the evaluation `skinkeras evaluate` wrote, evaluation_test/metrics.json with BCa intervals). What
the export adds (format, quantisation, files, verification) comes in `export_info`. The sections:
what the model is and was trained on (`describe`), what it scored and what it takes (`results`).

Example:
    >>> write_model_card("runs/ham10000_mnv3l_128", "saved_models/mnv3l",
    ...                  export_info={"format": "saved_model"})  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from skinkeras.export.model_card.facts import RunFacts
from skinkeras.export.model_card.texts import CLASS_DESCRIPTIONS, WARNING  # noqa: F401  (the card's texts)

MODEL_CARD_FILE = "MODEL_CARD.md"


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
    from skinkeras.export.model_card import describe, results
    from skinkeras.files import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    facts = RunFacts.read(run_dir, out_dir, export_info)
    sections = [
        describe.header(facts),
        describe.intended_use(facts),
        describe.model_section(facts),
        describe.training_data(facts),
        results.evaluation(facts),
        results.input_contract(facts),
    ]
    if facts.decision_rule:  # absent from runs without one: their cards are as before
        sections.append(results.decision_rule(facts))
    if facts.export_info:
        sections.append(results.export_section(facts))
    sections.append(describe.limitations(facts))
    text = "\n\n".join(s.strip("\n") for s in sections) + "\n"
    return atomic_write_text(out_dir / MODEL_CARD_FILE, text)  # a reader never sees half a card
