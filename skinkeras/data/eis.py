"""Electrical impedance spectroscopy (EIS) + dermoscopy, after paper 000 (melanoma vs benign).

No EIS dataset is public, so skinkeras defines its own layout (generated data uses it too:
`skinkeras data synth eis`). A Nevisense-style electrode has 5 bars; measuring between different
bar pairs gives 10 "permutations" that reach different depths (neighbouring bars: surface, distant
bars: deeper skin). Each permutation is measured at 35 frequencies spaced logarithmically from
1 kHz to 2.5 MHz (`FREQUENCIES_HZ`). A lesion has a variable number of measurements (1..N).

Layout of an EIS dataset folder:

    eis_metadata.csv        one row per lesion: lesion_id,label,age,sex,site,image
                            label: "melanoma" or "benign"; age in years (empty = unknown);
                            sex female/male/unknown; site as in HAM10000 (empty = unknown);
                            image: optional path of the paired dermoscopy image, relative to the
                            folder (empty = no image)
    spectra/<lesion_id>.npy complex64 (or complex128) array of shape (n_measurements, 10, 35):
                            measurement x bar permutation x frequency, impedance in ohms
    images/...              the optional dermoscopy images

Features: each measurement becomes 700 real numbers, `spectra_to_features`: the 10x35 magnitudes
|Z| (ohms) then the 10x35 phases arg(Z) (radians), each flattened permutation-major
(index = permutation * 35 + frequency). Paper 000 normalises them to zero mean and unit variance
over the training set; that is the pipeline's job, not the loader's.

Table: one row per lesion; `image_id` = `lesion_id`; `image_path` is the dermoscopy image or ""
when there is none; extra columns `eis_path` (the .npy file) and `n_measurements` (read from the
.npy header, no data loaded). A missing or malformed spectra file, or a listed image that does not
exist, excludes the lesion (MISSING_FILE / UNREADABLE).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinkeras.data.loading import build_table, read_csv, require_file, require_root
from skinkeras.data.registry import register_dataset
from skinkeras.data.table import MISSING_FILE, UNREADABLE, Problem, SampleTable
from skinkeras.errors import DataError

CLASS_NAMES = ("benign", "melanoma")
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
    if not np.issubdtype(dtype, np.complexfloating):
        return f"dtype {dtype} is not complex"
    if len(shape) != 3 or shape[1:] != (NUM_PERMUTATIONS, NUM_FREQUENCIES) or shape[0] < 1:
        return f"shape {shape} is not (n_measurements >= 1, {NUM_PERMUTATIONS}, {NUM_FREQUENCIES})"
    return ""


def load_spectra(path) -> np.ndarray:
    """complex64 (n_measurements, 10, 35) from a spectra file; DataError if it is malformed."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read EIS spectra {path}: {error}") from None
    problem = _spectra_problem(array.shape, array.dtype)
    if problem:
        raise DataError(f"EIS spectra {path}: {problem}")
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


@register_dataset("eis")
def load_eis(root) -> SampleTable:
    """EIS spectra (10 permutations x 35 frequencies per measurement) + optional dermoscopy, melanoma vs benign."""
    root = require_root(root)
    csv_path = require_file(root / METADATA_CSV, "the EIS metadata CSV")
    frame = read_csv(csv_path, required=("lesion_id", "label"))
    problems: list[Problem] = []
    eis_paths, image_paths, expected, counts = [], [], [], []
    image_column = frame.get("image", pd.Series("", index=frame.index))
    for lesion_id, image in zip(frame["lesion_id"], image_column):
        spectra_path = root / SPECTRA_DIR / f"{lesion_id}.npy"
        n_measurements = 0
        eis_path = ""
        if not spectra_path.is_file():
            problems.append(Problem(lesion_id, MISSING_FILE, f"EIS spectra not found: {spectra_path}"))
        else:
            try:
                shape, dtype = read_spectra_header(spectra_path)
                why = _spectra_problem(shape, dtype)
            except (OSError, ValueError) as error:
                why = f"not a .npy file ({error})"
            if why:
                problems.append(Problem(lesion_id, UNREADABLE, f"{spectra_path}: {why}"))
            else:
                eis_path = str(spectra_path.resolve())
                n_measurements = shape[0]
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
            "label": frame["label"].str.lower(),
            "lesion_id": frame["lesion_id"],
            "age": frame.get("age", pd.Series("", index=frame.index)),
            "sex": frame.get("sex", pd.Series("", index=frame.index)),
            "site": frame.get("site", pd.Series("", index=frame.index)),
            "mask_path": "",
            "split": "",
            "eis_path": eis_paths,
            "n_measurements": counts,
        }
    )
    bad = {p.image_id for p in problems}
    table = build_table(
        "eis", root, raw[~raw["image_id"].isin(bad)], CLASS_NAMES, source=str(csv_path),
        extra_columns=("eis_path", "n_measurements"), problems=problems,
    )
    samples = table.samples
    samples.loc[samples["image_path"] == "<none>", "image_path"] = ""
    samples["n_measurements"] = samples["n_measurements"].astype(np.int64)
    return table
