"""Electrical impedance spectroscopy (EIS) + dermoscopy, after paper 000 (malignant vs benign).

No EIS dataset is public, so skinkeras defines its own layout (generated data uses it too:
`skinkeras data synth eis`, and the semi-synthetic set pairing real HAM10000 images with generated
spectra: `skinkeras data synth eis --images-from ham10000 --root HAM_DIR`). A Nevisense-style
electrode has 5 bars; measuring between different bar pairs gives 10 "permutations" that reach
different depths (neighbouring bars: surface, distant bars: deeper skin). Each permutation is
measured at 35 frequencies spaced logarithmically from 1 kHz to 2.5 MHz (`FREQUENCIES_HZ`). A lesion
has a variable number of measurements (1..N).

Layout of an EIS dataset folder:

    eis_metadata.csv        one row per lesion: lesion_id,label,diagnosis,age,sex,site,image
                            label: "benign" or "malignant" (paper 000: malignant = melanoma, other
                            skin cancers and severe dysplasia); the older label "melanoma" still
                            reads, as malignant with diagnosis melanoma.
                            diagnosis (optional column): see MALIGNANT_DIAGNOSES / BENIGN_DIAGNOSES;
                            empty or no column = "melanoma" for a "melanoma" label,
                            "benign_unspecified" / "malignant_unspecified" otherwise. A diagnosis
                            outside the vocabularies is kept (and reported), the label decides.
                            age in years (empty = unknown); sex female/male/unknown; site as in
                            HAM10000 (empty = unknown); image: optional path of the paired
                            dermoscopy image, relative to the folder (empty = no image)
    spectra/<lesion_id>.npy complex64 (or complex128) array of shape (n_measurements, 10, 35):
                            measurement x bar permutation x frequency, impedance in ohms
    images/...              the optional dermoscopy images

Features: each measurement becomes 700 real numbers, `spectra_to_features`: the 10x35 magnitudes
|Z| (ohms) then the 10x35 phases arg(Z) (radians), each flattened permutation-major
(index = permutation * 35 + frequency). Paper 000 normalises them to zero mean and unit variance
over the training set; that is the pipeline's job, not the loader's.

Table: one row per lesion; `image_id` = `lesion_id`; classes `CLASS_NAMES` = ("benign",
"malignant"), index 1 = malignant (the positive class); `image_path` is the dermoscopy image or ""
when there is none; extra columns `eis_path` (the .npy file), `n_measurements` and `diagnosis`.
Every spectra file is read once (they are small): a missing file is MISSING_FILE; a file that is not
.npy, not complex, not (n >= 1, 10, 35), or holds NaN/inf values is UNREADABLE with the reason; a
listed image that does not exist is MISSING_FILE. Each excludes the lesion and is counted by
`skinkeras data summary eis`.

Evaluation (paper 000): models train on every lesion but are evaluated on all benign lesions plus
the malignant melanomas: `evaluated_mask(table, "benign+melanoma")` (or "all").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinkeras.data.loading import build_table, read_csv, require_file, require_root
from skinkeras.data.registry import register_dataset
from skinkeras.data.table import MISSING_FILE, UNKNOWN_VALUE, UNREADABLE, Problem, SampleTable
from skinkeras.errors import ConfigError, DataError

CLASS_NAMES = ("benign", "malignant")
# Diagnosis vocabularies. Malignant: melanoma, basal / squamous cell carcinoma, actinic keratosis /
# intraepithelial carcinoma (HAM10000's akiec), and severe dysplasia ("dysplastic"), which paper 000
# counts as malignant. Benign: HAM10000's bkl is kept as its own word beside seborrheic_keratosis.
MALIGNANT_DIAGNOSES = ("melanoma", "bcc", "scc", "akiec", "dysplastic", "malignant_unspecified")
BENIGN_DIAGNOSES = (
    "nevus", "seborrheic_keratosis", "bkl", "dermatofibroma", "vascular", "other_benign", "benign_unspecified",
)
LEGACY_LABELS = {"melanoma": ("malignant", "melanoma")}  # old label -> (label, default diagnosis)
UNSPECIFIED = {"benign": "benign_unspecified", "malignant": "malignant_unspecified"}
EVALUATION_RULES = ("benign+melanoma", "all")
NUM_PERMUTATIONS = 10
NUM_FREQUENCIES = 35
NUM_FEATURES = 2 * NUM_PERMUTATIONS * NUM_FREQUENCIES  # 700
FREQUENCIES_HZ = np.geomspace(1e3, 2.5e6, NUM_FREQUENCIES)
METADATA_CSV = "eis_metadata.csv"
SPECTRA_DIR = "spectra"


def read_spectra_header(path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file from its header alone."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    return tuple(shape), np.dtype(dtype)


def _spectra_problem(shape, dtype) -> str:
    """Why an array of this shape and dtype is not a spectra array ("" when it is)."""
    if not np.issubdtype(dtype, np.complexfloating):
        return f"dtype {dtype} is not complex"
    if len(shape) != 3 or shape[1:] != (NUM_PERMUTATIONS, NUM_FREQUENCIES):
        return f"shape {shape} is not (n_measurements >= 1, {NUM_PERMUTATIONS}, {NUM_FREQUENCIES})"
    if shape[0] < 1:
        return f"zero measurements (shape {shape})"
    return ""


def _values_problem(array: np.ndarray) -> str:
    """NaN / inf anywhere poisons the per-feature statistics of every model, so the lesion goes."""
    finite = np.isfinite(array)
    if finite.all():
        return ""
    return f"non-finite values ({int(finite.size - finite.sum())} of {finite.size})"


def _read_spectra(path) -> tuple[np.ndarray | None, str]:
    """(array, "") or (None, why it is unusable); reads the file once."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        return None, f"not a readable .npy file ({str(error).splitlines()[0] if str(error) else type(error).__name__})"
    if not isinstance(array, np.ndarray):  # an .npz archive
        return None, "not a .npy array (an .npz archive?)"
    why = _spectra_problem(array.shape, array.dtype) or _values_problem(array)
    return (None, why) if why else (array, "")


def load_spectra(path) -> np.ndarray:
    """complex64 (n_measurements, 10, 35) from a spectra file; DataError if it is malformed."""
    array, why = _read_spectra(path)
    if array is None:
        raise DataError(f"EIS spectra {path}: {why}")
    return array.astype(np.complex64)


def spectra_to_features(spectra: np.ndarray) -> np.ndarray:
    """(n, 10, 35) complex -> (n, 700) float32: 350 magnitudes then 350 phases (radians)."""
    spectra = np.asarray(spectra)
    if spectra.ndim != 3 or spectra.shape[1:] != (NUM_PERMUTATIONS, NUM_FREQUENCIES):
        raise ValueError(
            f"spectra must have shape (n, {NUM_PERMUTATIONS}, {NUM_FREQUENCIES}). Received: shape={spectra.shape}"
        )
    flat = spectra.reshape(len(spectra), NUM_PERMUTATIONS * NUM_FREQUENCIES)
    return np.concatenate([np.abs(flat), np.angle(flat)], axis=1).astype(np.float32)


def labels_and_diagnoses(frame: pd.DataFrame, csv_path) -> tuple[list[str], list[str], list[Problem]]:
    """Normalised (label, diagnosis) per row, and the non-excluding problems worth reporting.

    Old files say "melanoma" as the label; they read as malignant / melanoma. A diagnosis outside
    both vocabularies is kept (the label decides the class); one that contradicts its label is
    reported, since either the label or the diagnosis is wrong, but the label still decides.
    """
    given = frame["diagnosis"] if "diagnosis" in frame.columns else pd.Series("", index=frame.index)
    labels, diagnoses, problems = [], [], []
    for lesion_id, label, diagnosis in zip(frame["lesion_id"], frame["label"].str.lower(), given.str.lower()):
        label, default = LEGACY_LABELS.get(label, (label, UNSPECIFIED.get(label, "")))
        diagnosis = diagnosis.replace(" ", "_") or default
        labels.append(label)
        diagnoses.append(diagnosis)
        if label not in CLASS_NAMES or not diagnosis:
            continue  # the unknown label is reported by build_table
        if diagnosis not in MALIGNANT_DIAGNOSES + BENIGN_DIAGNOSES:
            problems.append(Problem(lesion_id, UNKNOWN_VALUE, f"diagnosis {diagnosis!r} in {csv_path} is in neither "
                                    f"vocabulary; kept as {label}"))
        elif (diagnosis in MALIGNANT_DIAGNOSES) != (label == "malignant"):
            problems.append(Problem(lesion_id, UNKNOWN_VALUE, f"diagnosis {diagnosis!r} contradicts label {label!r} "
                                    f"in {csv_path}; kept as {label}"))
    return labels, diagnoses, problems


def evaluated_mask(table_or_frame, rule: str = "benign+melanoma") -> np.ndarray:
    """Boolean mask of the lesions a model is judged on.

    "benign+melanoma" (paper 000): every benign lesion plus the malignant lesions diagnosed as
    melanoma; other malignancies (bcc, scc, ...) are trained on but not evaluated. "all": every row.
    Takes a SampleTable or a DataFrame with `label` and `diagnosis` columns (e.g. a run's folds.csv).
    """
    frame = getattr(table_or_frame, "samples", table_or_frame)
    if rule not in EVALUATION_RULES:
        raise ConfigError(f"evaluation rule must be one of {list(EVALUATION_RULES)}. Received: {rule!r}")
    if rule == "all":
        return np.ones(len(frame), dtype=bool)
    missing = [c for c in ("label", "diagnosis") if c not in frame.columns]
    if missing:
        raise DataError(f"evaluated_mask needs columns {missing}; found {list(frame.columns)}")
    label = frame["label"].astype(str).str.lower()
    diagnosis = frame["diagnosis"].astype(str).str.lower()
    return ((label == "benign") | (diagnosis == "melanoma")).to_numpy()


@register_dataset("eis")
def load_eis(root) -> SampleTable:
    """EIS spectra (10 permutations x 35 frequencies per measurement) + optional dermoscopy, malignant vs benign."""
    root = require_root(root)
    csv_path = require_file(root / METADATA_CSV, "the EIS metadata CSV")
    frame = read_csv(csv_path, required=("lesion_id", "label"))
    labels, diagnoses, problems = labels_and_diagnoses(frame, csv_path)
    eis_paths, image_paths, expected, counts = [], [], [], []
    image_column = frame.get("image", pd.Series("", index=frame.index))
    for lesion_id, image in zip(frame["lesion_id"], image_column):
        spectra_path = root / SPECTRA_DIR / f"{lesion_id}.npy"
        n_measurements = 0
        eis_path = ""
        if not spectra_path.is_file():
            problems.append(Problem(lesion_id, MISSING_FILE, f"EIS spectra not found: {spectra_path}"))
        else:
            array, why = _read_spectra(spectra_path)
            if why:
                problems.append(Problem(lesion_id, UNREADABLE, f"{spectra_path}: {why}"))
            else:
                eis_path = str(spectra_path.resolve())
                n_measurements = len(array)
        image_path = ""
        if image:
            candidate = root / image
            if candidate.is_file():
                image_path = str(candidate.resolve())
            else:
                problems.append(Problem(lesion_id, MISSING_FILE, f"image file not found: {candidate}"))
        eis_paths.append(eis_path)
        image_paths.append(image_path)
        counts.append(n_measurements)
        expected.append(str(root / image) if image else "")
    raw = pd.DataFrame(
        {
            "image_id": frame["lesion_id"],
            # build_table excludes rows with an empty image_path; for EIS the image is optional, so
            # a placeholder keeps image-less lesions and is cleared again below.
            "image_path": [p or "<none>" for p in image_paths],
            "expected_image": expected,
            "label": labels,
            "lesion_id": frame["lesion_id"],
            "age": frame.get("age", pd.Series("", index=frame.index)),
            "sex": frame.get("sex", pd.Series("", index=frame.index)),
            "site": frame.get("site", pd.Series("", index=frame.index)),
            "mask_path": "",
            "split": "",
            "eis_path": eis_paths,
            "n_measurements": counts,
            "diagnosis": diagnoses,
        }
    )
    bad = {p.image_id for p in problems if p.excludes}
    table = build_table(
        "eis", root, raw[~raw["image_id"].isin(bad)], CLASS_NAMES, source=str(csv_path),
        extra_columns=("eis_path", "n_measurements", "diagnosis"), problems=problems,
    )
    samples = table.samples
    samples.loc[samples["image_path"] == "<none>", "image_path"] = ""
    samples["n_measurements"] = samples["n_measurements"].astype(np.int64)
    return table
