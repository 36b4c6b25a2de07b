"""Paper 004's Table 1 as data: the modality combinations, with / without the embedding network.

A row id is what the trainer writes into the `model` column of RUN/predictions.csv. A network row
names its image modalities (`images`: "dsc" dermoscopic, "macro" clinical), whether it reads the
metadata vector and whether the embedding network sits before the softmax; `shared` rows use one
tower (one set of weights) for both images. "meta_emb" is the embedding network on metadata alone
(the paper tried it: mAP 0.391), "meta_rf" the random forest.

`fallback`: the row that predicts a case without a clinical image: the same row without the
clinical tower (dsc + macro + meta -> dsc + meta). Clinical-only rows have none: such a case is not
scored by them (the report counts it).

`PAPER_TABLE1`: the paper's figures (mean over five folds: top-1 accuracy, mAP, AUC melanoma, AUC
cancer). The extracted text of the paper prints the two network blocks without their headings; they
are assigned by the figures its text quotes for the embedding network (dsc mAP 0.669 -> dsc + macro
0.726; AUC melanoma 0.831 -> 0.866), and the random forest's top-1 0.544 by elimination.

Example:
    >>> ROWS_BY_ID["dsc_macro_meta_emb"].fallback, ROWS_BY_ID["macro_emb"].fallback
    ('dsc_meta_emb', None)
"""

from __future__ import annotations

import dataclasses

MODALITIES = ("dsc", "macro")
METRICS = ("accuracy", "map", "auc_melanoma", "auc_cancer")
GROUPS = ("with embedding network", "no embedding network", "metadata only")


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    label: str
    group: str
    kind: str  # "network" | "forest"
    images: tuple[str, ...] = ()
    metadata: bool = False
    embedding: bool = True
    shared: bool = False

    @property
    def uses_clinical(self) -> bool:
        return "macro" in self.images

    @property
    def members(self) -> tuple[str, ...]:
        """The one-image rows whose towers start a two-image row with `fusion.tower_init="members"`
        (same metadata and head; a shared tower starts from the dermoscopic one)."""
        if len(self.images) < 2:
            return ()
        return tuple(_row_id((m,), self.metadata, self.embedding) for m in (("dsc",) if self.shared else self.images))

    @property
    def fallback(self) -> str | None:
        if not self.uses_clinical or "dsc" not in self.images:
            return None
        return _row_id(("dsc",), self.metadata, self.embedding)


def _row_id(images, metadata: bool, embedding: bool, shared: bool = False) -> str:
    return "_".join(images) + ("_meta" if metadata else "") + ("_emb" if embedding else "_noemb") + (
        "_shared" if shared else "")


def _label(images, metadata: bool, shared: bool = False) -> str:
    return " + ".join(list(images) + (["meta"] if metadata else [])) + (" (shared tower)" if shared else "")


COMBINATIONS = ((("macro",), False), (("macro",), True), (("dsc",), False), (("dsc",), True),
                (("dsc", "macro"), False), (("dsc", "macro"), True))

ROWS = tuple(
    [Row(_row_id(images, meta, True), _label(images, meta), GROUPS[0], "network", images, meta, True)
     for images, meta in COMBINATIONS]
    + [Row(_row_id(("dsc", "macro"), True, True, True), _label(("dsc", "macro"), True, True), GROUPS[0], "network",
           ("dsc", "macro"), True, True, True)]
    + [Row(_row_id(images, meta, False), _label(images, meta), GROUPS[1], "network", images, meta, False)
       for images, meta in COMBINATIONS]
    + [Row("meta_emb", "meta (embedding network)", GROUPS[2], "network", (), True, True),
       Row("meta_rf", "meta (random forest)", GROUPS[2], "forest", (), True, False)]
)
ROWS_BY_ID = {row.id: row for row in ROWS}
ROW_IDS = tuple(ROWS_BY_ID)

# (top-1 accuracy, mAP, AUC melanoma, AUC cancer), mean (sd) over the paper's five folds.
PAPER_TABLE1 = {
    "macro_emb": ((0.647, 0.010), (0.598, 0.005), (0.791, 0.009), (0.854, 0.004)),
    "macro_meta_emb": ((0.652, 0.005), (0.604, 0.009), (0.787, 0.007), (0.859, 0.004)),
    "dsc_emb": ((0.707, 0.010), (0.669, 0.010), (0.831, 0.004), (0.871, 0.004)),
    "dsc_meta_emb": ((0.701, 0.011), (0.691, 0.014), (0.840, 0.008), (0.872, 0.005)),
    "dsc_macro_emb": ((0.721, 0.007), (0.726, 0.012), (0.866, 0.006), (0.888, 0.005)),
    "dsc_macro_meta_emb": ((0.720, 0.007), (0.729, 0.009), (0.861, 0.006), (0.888, 0.002)),
    "macro_noemb": ((0.647, 0.016), (0.598, 0.009), (0.784, 0.005), (0.858, 0.007)),
    "macro_meta_noemb": ((0.645, 0.009), (0.603, 0.012), (0.794, 0.011), (0.862, 0.004)),
    "dsc_noemb": ((0.705, 0.013), (0.682, 0.015), (0.830, 0.010), (0.870, 0.007)),
    "dsc_meta_noemb": ((0.700, 0.008), (0.672, 0.008), (0.832, 0.005), (0.871, 0.004)),
    "dsc_macro_noemb": ((0.716, 0.012), (0.720, 0.011), (0.846, 0.007), (0.888, 0.005)),
    "dsc_macro_meta_noemb": ((0.719, 0.011), (0.714, 0.007), (0.849, 0.010), (0.881, 0.004)),
    "meta_rf": ((0.544, 0.006), (0.402, 0.005), (0.634, 0.010), (0.810, 0.004)),
}
PAPER_META_EMB_MAP = 0.391  # the paper's text: embedding network on metadata alone (no table row)


def comparisons(row_ids) -> list[tuple[str, str]]:
    """(fusion row, its dermoscopy-only row) pairs among `row_ids`: each row that adds the clinical
    image or metadata to dermoscopy, against dsc alone with the same head."""
    present = set(row_ids)
    pairs = []
    for row_id in row_ids:
        row = ROWS_BY_ID[row_id]
        if row.kind != "network" or "dsc" not in row.images or (row.images == ("dsc",) and not row.metadata):
            continue
        base = _row_id(("dsc",), False, row.embedding)
        if base in present:
            pairs.append((row_id, base))
    return pairs
