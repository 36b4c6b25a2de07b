"""The sample table every dataset loader returns: paths, labels, groups and metadata, never pixels.

A loader reads an official on-disk layout and returns a `SampleTable`. Rows that cannot be used
(missing image file, unknown label, duplicate image id, ...) are *not* silently dropped: they are
left out of `samples` and recorded in `problems`, one `Problem` per image id, so `data summary`
can report them and training can log how many were skipped.

Columns of `SampleTable.samples` (one row per usable image):

| column       | dtype  | meaning                                                                  |
|--------------|--------|--------------------------------------------------------------------------|
| image_id     | str    | unique within the table                                                  |
| image_path   | str    | absolute path of the (dermoscopic) image                                 |
| label        | str    | class name, one of `class_names`                                         |
| label_index  | int    | position of `label` in `class_names`                                     |
| lesion_id    | str    | group for splitting: lesion (HAM10000), case (derm7pt), else the image id |
| age          | float  | years; NaN when unknown or invalid                                       |
| sex          | str    | "female", "male" or "unknown"                                            |
| site         | str    | anatomical site, lower case; "unknown" when not recorded                 |
| mask_path    | str    | absolute path of the lesion mask, "" when there is none                  |
| split        | str    | official split of the release ("train", "val", "test"), "" when none     |

Dataset-specific extra columns may follow (e.g. `dx_type` for HAM10000, which leaks the label and is
never a model input; `clinical_path` and `elevation` for derm7pt and, when its CSV has them, the folder
dataset; `eis_path` for EIS). `clinical_path` is "" when a case has no clinical image: the case is kept
(dermoscopy only) and a MISSING_CLINICAL problem names what was looked for.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

COLUMNS = (
    "image_id",
    "image_path",
    "label",
    "label_index",
    "lesion_id",
    "age",
    "sex",
    "site",
    "mask_path",
    "split",
)

SEXES = ("female", "male", "unknown")

# Problem kinds, shared by loaders, the summary and the pipelines.
MISSING_FILE = "missing_file"
UNREADABLE = "unreadable"  # corrupt or truncated image, or not an image at all
UNKNOWN_LABEL = "unknown_label"
DUPLICATE_ID = "duplicate_id"
BAD_AGE = "bad_age"  # NaN is *not* a problem (age unknown); negative or > 120 is
CONVERTED = "converted"  # readable but not 8-bit RGB (grayscale, RGBA, 16-bit): converted on load
AMBIGUOUS_FILE = "ambiguous_file"  # two image files for one image id: which one is meant is unknown
UNKNOWN_VALUE = "unknown_value"  # a sex / site value outside the vocabulary: encoded as unknown
MISSING_COLUMN = "missing_column"  # a metadata column the CSV lacks (image id ALL_IMAGES): all unknown
MISSING_CLINICAL = "missing_clinical"  # no clinical image for a case (empty cell or no file): kept dermoscopy-only
EXCLUDING_KINDS = (MISSING_FILE, UNREADABLE, UNKNOWN_LABEL, DUPLICATE_ID, AMBIGUOUS_FILE)
ALL_IMAGES = "*"  # the image id of a problem of the whole table


@dataclasses.dataclass(frozen=True)
class Problem:
    """Something wrong with one image id. `kind` is one of the constants above."""

    image_id: str
    kind: str
    detail: str = ""

    @property
    def excludes(self) -> bool:
        """Whether the image is left out of the usable samples because of this problem."""
        return self.kind in EXCLUDING_KINDS


@dataclasses.dataclass
class SampleTable:
    """A dataset as a table of samples.

    Args:
        name: registry name of the dataset ("ham10000", "isic2017", ...).
        root: the folder it was read from.
        samples: usable rows, with at least the columns in `COLUMNS`.
        class_names: class names in label-index order.
        problems: everything found wrong while reading, by image id.
    """

    name: str
    root: Path
    samples: pd.DataFrame
    class_names: tuple[str, ...]
    problems: list[Problem] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        missing = [c for c in COLUMNS if c not in self.samples.columns]
        if missing:
            raise ValueError(f"SampleTable.samples lacks columns {missing}")

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> dict[str, int]:
        counts = self.samples["label"].value_counts()
        return {name: int(counts.get(name, 0)) for name in self.class_names}

    def with_classes(self, class_names) -> "SampleTable":
        """The table with a model's classes (`label_index` into them): an external set may hold
        some of them in any order (a partial label set; the others are absent from its labels).
        A label the model does not know raises DataError naming it."""
        from skinkeras.errors import DataError

        class_names = tuple(class_names)
        if class_names == self.class_names:
            return self
        unknown = sorted(set(self.samples["label"]) - set(class_names))
        if unknown:
            raise DataError(f"the dataset's labels {unknown} are not among the model's classes {list(class_names)}")
        index = {name: k for k, name in enumerate(class_names)}
        samples = self.samples.assign(label_index=self.samples["label"].map(index).astype("int64"))
        return dataclasses.replace(self, samples=samples, class_names=class_names)

    def subset(self, mask_or_index) -> "SampleTable":
        """A table with the selected rows (boolean mask or index labels); problems are kept."""
        rows = self.samples.loc[mask_or_index].reset_index(drop=True)
        return dataclasses.replace(self, samples=rows)
