"""Paper 003's Tables 2-5 as data: one row per (model, optimizer, loss, weighting) cell spec.

A row id is `f"{model}_{optimizer}_{loss}_{weighting}"` (e.g. "flat_adam_cel_cb"); it is what the
trainer writes into the `model` column of RUN/predictions.csv. The four tables of the paper
(Barata & Santiago, "How Important Is Each Dermoscopy Image?", section 5.1) are the four
(model, optimizer) pairs:

    Table 2: flat model, Adam          Table 3: hierarchical model, Adam
    Table 4: flat model, SGD           Table 5: hierarchical model, SGD

each with ten rows: loss CEL or FL, times weighting "-" (none), CB, ES, SPL, OHEM. Weightings map
to the `train` section: cb -> class_weights="original" (eq. 7), es -> "effective_number" (eq. 8),
spl / ohem -> sample_selection (eq. 9) with no class weights; loss cel -> "cce", focal -> "focal".

`PAPER_TABLES`: the paper's figures (Acc, BAcc, mPR, mF1 in %, the average of its two 80/20
splits of the ISIC 2018 training set), transcribed from the text of Tables 2-5 of
/work/shared/papers/003_*.txt in the order the paper prints them (CEL: -, CB, ES, SPL, OHEM; then
FL: the same five). The paper's Figures 1 and 2 (per-class recall) carry no numbers in its text:
nothing of them is transcribed.

Example:
    >>> ROWS_BY_ID["hierarchical_sgd_focal_ohem"].table, baseline_of("flat_adam_focal_cb")
    (5, 'flat_adam_cel_none')
"""

from __future__ import annotations

import dataclasses

MODELS = ("flat", "hierarchical")
OPTIMIZERS = ("adam", "sgd")
LOSSES = ("cel", "focal")
WEIGHTINGS = ("none", "cb", "es", "spl", "ohem")
METRICS = ("accuracy", "balanced_accuracy", "mean_precision", "mean_f1")
# (model, optimizer) -> the paper's table number.
TABLES = {("flat", "adam"): 2, ("hierarchical", "adam"): 3, ("flat", "sgd"): 4, ("hierarchical", "sgd"): 5}
LOSS_LABELS = {"cel": "CEL", "focal": "FL"}
WEIGHTING_LABELS = {"none": "-", "cb": "CB", "es": "ES", "spl": "SPL", "ohem": "OHEM"}
CLASS_WEIGHT_MODES = {"cb": "original", "es": "effective_number"}  # train.class_weights
SELECTIONS = ("spl", "ohem")  # train.sample_selection


@dataclasses.dataclass(frozen=True)
class Row:
    model: str  # flat | hierarchical
    optimizer: str  # adam | sgd
    loss: str  # cel | focal
    weighting: str  # none | cb | es | spl | ohem

    @property
    def id(self) -> str:
        return f"{self.model}_{self.optimizer}_{self.loss}_{self.weighting}"

    @property
    def table(self) -> int:
        return TABLES[(self.model, self.optimizer)]

    @property
    def label(self) -> str:
        return f"{LOSS_LABELS[self.loss]} {WEIGHTING_LABELS[self.weighting]}"

    @property
    def class_weights(self) -> str:
        """`train.class_weights` of the row."""
        return CLASS_WEIGHT_MODES.get(self.weighting, "none")

    @property
    def sample_selection(self) -> str:
        """`train.sample_selection` of the row."""
        return self.weighting if self.weighting in SELECTIONS else "none"

    @property
    def baseline(self) -> str:
        """The CEL row without weighting of the same model and optimizer (the permutation tests' reference)."""
        return Row(self.model, self.optimizer, "cel", "none").id


ROWS = tuple(Row(model, optimizer, loss, weighting)
             for (model, optimizer) in TABLES for loss in LOSSES for weighting in WEIGHTINGS)
ROWS_BY_ID = {row.id: row for row in ROWS}
ROW_IDS = tuple(ROWS_BY_ID)


def baseline_of(row_id: str) -> str:
    return ROWS_BY_ID[row_id].baseline


def rows_of(model: str | None = None, optimizer: str | None = None) -> tuple[str, ...]:
    """Row ids of one model and / or optimizer, in table order."""
    return tuple(r.id for r in ROWS if model in (None, r.model) and optimizer in (None, r.optimizer))


# The paper's Tables 2-5, as printed (Acc, BAcc, mPR, mF1 in %), rows in the order
# CEL -, CB, ES, SPL, OHEM, FL -, CB, ES, SPL, OHEM.
_PAPER_TEXT = {
    2: """87.5 72.5 80.0 75.5
          82.0 78.8 73.0 75.0
          83.5 78.0 77.5 77.0
          87.0 74.5 80.0 77.0
          84.5 74.0 77.0 74.5
          87.0 73.5 79.5 75.5
          81.0 78.8 73.0 75.0
          82.0 78.7 74.0 75.5
          86.0 71.9 80.0 75.0
          87.0 75.6 80.5 77.5""",
    3: """87.5 75.5 80.0 77.0
          84.0 78.4 76.0 76.5
          84.5 76.7 77.0 76.0
          85.5 68.8 76.5 72.0
          87.0 76.4 79.0 76.5
          87.0 74.5 79.0 76.0
          83.0 76.9 73.0 75.0
          83.5 78.0 74.0 75.5
          84.5 65.3 71.5 67.5
          88.0 75.7 80.5 77.5""",
    4: """78.5 46.1 57.0 49.0
          70.5 69.6 55.5 60.0
          71.5 68.9 54.5 59.5
          78.0 45.4 55.0 48.0
          78.0 44.0 61.0 47.0
          76.0 42.4 56.5 44.5
          71.0 69.0 53.5 59.0
          71.5 68.0 54.0 58.5
          77.0 39.0 60.0 44.0
          78.0 46.1 59.5 50.0""",
    5: """80.5 51.8 56.0 52.5
          75.0 74.4 60.5 65.5
          77.0 73.8 62.5 66.5
          80.5 52.1 57.0 53.0
          82.5 55.3 75.0 52.5
          78.0 49.0 55.0 51.0
          70.5 69.8 55.0 60.0
          72.5 70.2 55.5 60.5
          77.0 41.5 52.0 43.0
          79.5 49.2 57.5 52.0""",
}


def _paper_tables() -> dict[str, dict[str, float]]:
    figures = {}
    for (model, optimizer), number in TABLES.items():
        lines = [line.split() for line in _PAPER_TEXT[number].splitlines()]
        specs = [Row(model, optimizer, loss, weighting) for loss in LOSSES for weighting in WEIGHTINGS]
        for spec, values in zip(specs, lines, strict=True):
            figures[spec.id] = dict(zip(METRICS, (float(v) for v in values), strict=True))
    return figures


PAPER_TABLES = _paper_tables()  # row id -> {metric: value in %}
