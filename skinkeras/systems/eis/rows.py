"""The rows of paper 000's Table 1 as data: what each trains (or combines) and how the paper names it.

kind: svm | fcnn | gru (pooling last / mean / max) | cnn (cnn "dense" / "serx") | ensemble (max of
two rows' p(malignant)) | joint (a CNN and the state-max GRU trained end to end, fusion lin / fc / ca).
The CNN behind "dense" and "serx" is `eis.dense_backbone` / `eis.serx_backbone` (DenseNet121 and
SE-ResNeXt50 in the paper; small CNNs in the CPU config).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    label: str  # the paper's name of the row
    group: str  # EIS | Derm. | Ensemble | Combined
    kind: str
    pooling: str = ""  # gru rows
    cnn: str = ""  # "dense" | "serx" (cnn and joint rows)
    fusion: str = ""  # joint rows: lin | fc | ca
    members: tuple[str, ...] = ()  # ensemble rows

    @property
    def uses_images(self) -> bool:
        return self.kind in ("cnn", "joint")

    @property
    def uses_eis(self) -> bool:
        return self.kind in ("svm", "fcnn", "gru", "joint")


_ROWS = (
    Row("svm", "SVM", "EIS", "svm"),
    Row("fcnn", "FC-NN", "EIS", "fcnn"),
    Row("gru_last", "GRU last state", "EIS", "gru", pooling="last"),
    Row("gru_mean", "GRU state-mean-pool", "EIS", "gru", pooling="mean"),
    Row("gru_max", "GRU state-max-pool", "EIS", "gru", pooling="max"),
    Row("dense", "Dense", "Derm.", "cnn", cnn="dense"),
    Row("serx", "SE-RX", "Derm.", "cnn", cnn="serx"),
    Row("ens_serx_dense", "SE-RX & Dense", "Ensemble", "ensemble", members=("serx", "dense")),
    Row("ens_gru_fcnn", "GRU & FC-NN", "Ensemble", "ensemble", members=("gru_max", "fcnn")),
    Row("ens_dense_gru", "Dense & GRU", "Ensemble", "ensemble", members=("dense", "gru_max")),
    Row("ens_serx_gru", "SE-RX & GRU", "Ensemble", "ensemble", members=("serx", "gru_max")),
    Row("dense_gru_lin", "Dense-GRU Lin.", "Combined", "joint", cnn="dense", fusion="lin"),
    Row("serx_gru_lin", "SE-RX-GRU Lin.", "Combined", "joint", cnn="serx", fusion="lin"),
    Row("dense_gru_fc", "Dense-GRU FC", "Combined", "joint", cnn="dense", fusion="fc"),
    Row("serx_gru_fc", "SE-RX-GRU FC", "Combined", "joint", cnn="serx", fusion="fc"),
    Row("dense_gru_ca", "Dense-GRU CA", "Combined", "joint", cnn="dense", fusion="ca"),
    Row("serx_gru_ca", "SE-RX-GRU CA", "Combined", "joint", cnn="serx", fusion="ca"),
)

ROWS: dict[str, Row] = {row.id: row for row in _ROWS}


def row_label(row_id: str, pretrained: bool = False) -> str:
    """The paper's name of a row; the CNN rows read "Dense Pre" / "SE-RX Pre" with ImageNet weights."""
    label = ROWS[row_id].label
    if pretrained and ROWS[row_id].kind == "cnn":
        label += " Pre"
    return label
