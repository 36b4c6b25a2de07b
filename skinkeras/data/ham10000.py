"""HAM10000 (Tschandl, Rosendahl & Kittler, Sci. Data 5:180161, 2018): 7 classes, grouped by lesion.

On disk, as released:

    HAM10000_metadata.csv      lesion_id,image_id,dx,dx_type,age,sex,localization
    .../<image_id>.jpg         anywhere below the root: the Dataverse release splits them into
                               HAM10000_images_part_1/ and _part_2/, other copies use HAM10000_images/
    .../<image_id>_segmentation.png   optional lesion masks (HAM10000_segmentations_lesion_tschandl/)

Several images show the same lesion, so `lesion_id` is the group for every split. `dx_type`
(histo, follow_up, consensus, confocal) is kept as an extra column because it is recorded after
the diagnosis and leaks the label: it must never be a model input.
"""

from __future__ import annotations

import pandas as pd

from skinkeras.data.loading import (
    build_table,
    index_files,
    lookup,
    optional_column,
    read_csv,
    require_file,
    require_root,
)
from skinkeras.data.registry import register_dataset
from skinkeras.data.table import SampleTable

CLASS_NAMES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
CLASS_DESCRIPTIONS = {
    "akiec": "actinic keratosis / intraepithelial carcinoma (Bowen's disease)",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesion (solar lentigo, seborrheic keratosis, lichen planus-like keratosis)",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}
METADATA_CSV = "HAM10000_metadata.csv"
MASK_SUFFIX = "_segmentation"
# The localization vocabulary of the release (15 sites + "unknown").
SITES = (
    "abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand",
    "lower extremity", "neck", "scalp", "trunk", "upper extremity", "unknown",
)
DX_TYPES = ("histo", "follow_up", "consensus", "confocal")


@register_dataset("ham10000")
def load_ham10000(root, metadata_csv: str = METADATA_CSV) -> SampleTable:
    """HAM10000: 7 dermoscopic classes, images found by image_id anywhere below the root."""
    root = require_root(root)
    csv_path = require_file(root / metadata_csv, "the HAM10000 metadata CSV")
    frame = read_csv(csv_path, required=("lesion_id", "image_id", "dx"))
    files = index_files(root)
    ids = frame["image_id"]
    problems = []
    image_paths = lookup(ids, files)
    mask_paths = lookup(ids + MASK_SUFFIX, files)
    raw = pd.DataFrame(
        {
            "image_id": ids,
            "image_path": image_paths,
            "expected_image": ids + ".jpg below " + str(root),
            "label": frame["dx"].str.lower(),
            "lesion_id": frame["lesion_id"],
            "age": optional_column(frame, "age", csv_path, problems),
            "sex": optional_column(frame, "sex", csv_path, problems),
            "site": optional_column(frame, "localization", csv_path, problems),
            "mask_path": mask_paths,
            "split": "",
            "dx_type": frame.get("dx_type", pd.Series("", index=frame.index)),
        }
    )
    return build_table("ham10000", root, raw, CLASS_NAMES, source=str(csv_path), extra_columns=("dx_type",),
                       problems=problems, files=files, sites=SITES)
