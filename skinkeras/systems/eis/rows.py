"""Paper 000's Table 1 as data: the 17 rows (what each one is) and the paper's figures.

A row id is what the trainer writes into the `model` column of RUN/predictions.csv. Kinds:
"svm", "fcnn", "gru" (with `pooling`), "cnn" (with `backbone`), "ensemble" (`members`: two row ids,
lesion probability = max of their p(malignant); the "GRU" of the ensembles is gru_max) and "joint"
(`fusion` in lin / fc / ca of the `backbone` CNN with the state-max GRU).

With ImageNet weights the paper calls the CNN rows "Dense Pre" / "SE-RX Pre" (`row_label`); the
paper's figures for both variants are in `PAPER_TABLE1`, keyed by label. Figures are percentages
as printed: (value, low, high) of the 95 % BCa interval.

Example:
    >>> row_label("serx", pretrained=True), ROWS_BY_ID["ens_dense_gru"].members
    ('SE-RX Pre', ('dense', 'gru_max'))
"""

from __future__ import annotations

import dataclasses

GROUPS = ("EIS", "Derm.", "Ensemble", "Combined")
KINDS = ("svm", "fcnn", "gru", "cnn", "ensemble", "joint")
BACKBONES = {"dense": "DenseNet121", "serx": "SEResNeXt50"}  # names in skinkeras.models.backbones


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of Table 1. `members` for ensembles; `fusion` + `backbone` for joints; `pooling`
    for GRUs; `backbone` for CNNs (a `skinkeras.models.backbones` name)."""

    id: str
    label: str
    group: str
    kind: str
    members: tuple[str, ...] = ()
    fusion: str | None = None
    backbone: str | None = None
    pooling: str | None = None

    @property
    def uses_images(self) -> bool:
        return self.kind in ("cnn", "joint")

    @property
    def uses_eis(self) -> bool:
        return self.kind in ("svm", "fcnn", "gru", "joint")

    @property
    def cnn(self) -> str | None:
        """The CNN row id of a CNN or joint row ("dense" / "serx")."""
        for cnn_id, name in BACKBONES.items():
            if self.backbone == name:
                return cnn_id
        return None


def _joint(cnn: str, fusion: str) -> Row:
    short = {"dense": "Dense", "serx": "SE-RX"}[cnn]
    label = {"lin": "Lin.", "fc": "FC", "ca": "CA"}[fusion]
    return Row(f"{cnn}_gru_{fusion}", f"{short}-GRU {label}", "Combined", "joint", fusion=fusion,
               backbone=BACKBONES[cnn])


ROWS: tuple[Row, ...] = (
    Row("svm", "SVM", "EIS", "svm"),
    Row("fcnn", "FC-NN", "EIS", "fcnn"),
    Row("gru_last", "GRU last state", "EIS", "gru", pooling="last"),
    Row("gru_mean", "GRU state-mean-pool", "EIS", "gru", pooling="mean"),
    Row("gru_max", "GRU state-max-pool", "EIS", "gru", pooling="max"),
    Row("dense", "Dense", "Derm.", "cnn", backbone=BACKBONES["dense"]),
    Row("serx", "SE-RX", "Derm.", "cnn", backbone=BACKBONES["serx"]),
    Row("ens_serx_dense", "SE-RX & Dense", "Ensemble", "ensemble", members=("serx", "dense")),
    Row("ens_gru_fcnn", "GRU & FC-NN", "Ensemble", "ensemble", members=("gru_max", "fcnn")),
    Row("ens_dense_gru", "Dense & GRU", "Ensemble", "ensemble", members=("dense", "gru_max")),
    Row("ens_serx_gru", "SE-RX & GRU", "Ensemble", "ensemble", members=("serx", "gru_max")),
    _joint("dense", "lin"), _joint("serx", "lin"),
    _joint("dense", "fc"), _joint("serx", "fc"),
    _joint("dense", "ca"), _joint("serx", "ca"),
)
ROWS_BY_ID = {row.id: row for row in ROWS}
ROW_IDS = tuple(ROWS_BY_ID)
PRETRAINED_LABELS = {"dense": "Dense Pre", "serx": "SE-RX Pre"}

# Table 1 of the paper, in percent: label -> {metric: (value, CI low, CI high)}.
_S, _P, _A = "sensitivity", "specificity", "auc"
_TABLE = """
SVM                 98.0 95.1 99.5  27.9 24.7 31.3  80.8 77.3 84.0
FC-NN               98.0 95.3 99.5  30.0 26.9 34.2  81.9 78.5 84.8
GRU last state      98.0 95.3 99.5  25.0 21.9 28.5  83.9 80.6 86.6
GRU state-mean-pool 98.0 95.3 99.5  25.8 22.6 29.1  83.1 80.1 86.0
GRU state-max-pool  98.0 95.4 99.5  34.7 31.0 38.8  84.4 81.3 87.1
Dense               98.0 95.4 99.5  21.3 18.4 24.9  83.9 80.2 86.7
Dense Pre           98.0 94.8 99.5  34.4 31.3 38.4  88.8 85.6 91.0
SE-RX               98.0 95.3 99.5  17.9 15.1 21.1  83.5 80.1 86.8
SE-RX Pre           98.0 95.1 99.5  34.2 30.3 37.9  88.9 86.0 90.9
SE-RX & Dense       98.0 95.2 99.5  31.9 28.6 35.8  89.9 82.2 92.1
GRU & FC-NN         98.0 95.1 99.5  32.9 29.4 36.5  82.3 78.9 85.2
Dense & GRU         98.0 95.2 99.5  39.1 34.4 42.6  90.6 88.0 92.7
SE-RX & GRU         98.0 95.3 99.5  41.0 37.5 44.8  88.9 86.1 91.3
Dense-GRU Lin.      98.0 95.2 99.5  47.2 43.6 51.5  90.0 87.3 92.0
SE-RX-GRU Lin.      98.0 95.3 99.5  42.9 39.0 46.6  90.6 87.9 92.6
Dense-GRU FC        98.0 95.2 99.5  50.0 47.0 53.3  90.5 88.1 92.0
SE-RX-GRU FC        98.0 95.1 99.5  52.1 48.3 55.8  90.5 88.1 92.4
Dense-GRU CA        98.0 95.3 99.5  52.3 48.6 56.2  90.6 88.2 92.6
SE-RX-GRU CA        98.0 95.1 99.5  53.7 50.1 57.6  91.2 89.0 93.0
"""


def _parse(text: str) -> dict[str, dict[str, tuple[float, float, float]]]:
    table = {}
    for line in text.strip().splitlines():
        words = line.split()
        label, numbers = " ".join(words[:-9]), [float(w) for w in words[-9:]]
        table[label] = {name: tuple(numbers[3 * i: 3 * i + 3]) for i, name in enumerate((_S, _P, _A))}
    return table


PAPER_TABLE1 = _parse(_TABLE)
# The paper's dataset: 988 lesions, 631 benign and 357 malignant (melanoma, other skin cancers, severe
# dysplasia); it evaluates the benign ones and the melanomas, whose number it does not state.
PAPER_N = {"benign": 631, "malignant": 357}


def row_label(row_id: str, pretrained: bool = False) -> str:
    """The paper's label of a row ("Dense Pre" for the ImageNet-initialised CNN rows); an unknown
    id is its own label."""
    if pretrained and row_id in PRETRAINED_LABELS:
        return PRETRAINED_LABELS[row_id]
    row = ROWS_BY_ID.get(row_id)
    return row.label if row else row_id


def paper_figures(row_id: str, pretrained: bool = False) -> dict | None:
    """The paper's {metric: (value, low, high)} in percent for a row, None for unknown rows."""
    return PAPER_TABLE1.get(row_label(row_id, pretrained))


def group_of(row_id: str) -> str:
    row = ROWS_BY_ID.get(row_id)
    return row.group if row else "Other"
