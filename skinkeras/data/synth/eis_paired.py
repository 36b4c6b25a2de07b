"""SEMI-SYNTHETIC EIS data: REAL HAM10000 dermoscopy images paired with GENERATED Cole-model spectra.

No public dataset has both dermoscopy and impedance spectra of the same lesions, so the paper 000
demonstration set borrows real images and generates the spectra:

    skinkeras data synth eis --images-from ham10000 --root HAM_DIR --out OUT \\
        [--lesions 988|N|all] [--effect-size X] [--seed S] [--force]

- One image per HAM10000 lesion (the first image_id in sorted order; `image_choice="random"`
  draws one, seeded); the HAM `lesion_id` stays the lesion id, the JPEG bytes are copied to
  OUT/images/<lesion_id>.jpg and age / sex / site come from the HAM metadata.
- Labels (`HAM_DIAGNOSES`): mel, bcc, akiec -> malignant (diagnosis melanoma / bcc / akiec);
  nv, bkl, df, vasc -> benign (nevus / seborrheic_keratosis / dermatofibroma / vascular).
- `--lesions 988` (default) = paper 000's size and balance: 631 benign + 357 malignant; within each
  label the diagnoses are allocated in proportion to HAM's lesion counts (largest remainder) and the
  lesions drawn seeded. Another N keeps the same benign share; "all" takes every lesion.
- Spectra: 1-6 measurements per lesion from `skinkeras.data.synth.eis` (`lesion_parameters`,
  `measure`), drawn from the LABEL ALONE with their own random stream: given the label they are
  independent of the image, the diagnosis and the metadata. A model that uses both modalities can
  gain only because the two carry independent evidence about the label.

Calibration (`DEFAULT_EFFECT_SIZE` = 0.12): an EIS-only GRU should land near paper 000's EIS AUC
(about 0.84, benign + melanoma). skinkeras.systems.eis did not exist yet, so PROXIES were measured
on the default 988-lesion set of the shared HAM copy (7,993 images of 5,984 lesions), AUC on the
out-of-fold scores of benign + melanoma lesions, 5-fold stratified CV (the seed picks the lesions,
draws the spectra and splits the folds):

    effect size            0.02   0.025  0.03   0.035  0.04   0.05   0.07   0.1    0.12   0.15   0.3
    logistic regression    0.721  0.812  0.865    -    0.922  0.958    -    0.998    -      -      -
    MLP(64)                  -    0.616  0.684  0.756  0.818  0.915    -      -      -      -      -
    GRU (rough, see below)   -    0.473    -      -    0.476    -    0.536  0.649  0.850  0.945  0.999

- logistic regression: per-lesion mean of the 700 features, standardised, C = 1; 0.025 / 0.028 /
  0.03 are the mean of seeds 0, 1, 2 (0.792 / 0.855 / 0.789; 0.827 / 0.885 / 0.824 = 0.845 at 0.028;
  0.849 / 0.902 / 0.844), the others seed 0. `python -m skinkeras.data.synth.eis_proxy --root
  ../shared/data/ham10000 --effect-size 0.025 0.03`.
- MLP(64): scikit-learn MLPClassifier on the same per-lesion means (alpha 1e-3, 300 iterations), seed 0.
- GRU (rough): a scratch Keras model outside the repository, seed 0: per-measurement standardised
  features (training folds), padded to 6 with a mask, GRU(64) last state -> Dense(64) + BN + ReLU ->
  Dense(2), Adam lr 1e-3, batch 10, 20 epochs (not the paper's lr 2e-5 x 200 epochs, nor state-max).

The linear proxy is far stronger than the neural models here: the malignant effect grows with depth,
so it shows as a small, consistent change of the depth profile that a linear model on lesion means
reads exactly, while networks trained by SGD on per-measurement features only pick up the larger
shifts. An LR proxy aimed at 0.80-0.84 (effect 0.025) leaves a GRU at chance, so the default follows
the rough GRU instead: `--effect-size 0.12` gives it AUC 0.850 (0.13: 0.845; logistic regression ~1.0). Re-check
with the real GRU of skinkeras.systems.eis and move `--effect-size` (0.1..0.15 spans GRU 0.65..0.95;
the estimate is one seed and noisy). `--effect-size 1.0` is the fully generated `synth eis` default.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from skinkeras.data.eis import CLASS_NAMES, METADATA_CSV, SPECTRA_DIR
from skinkeras.data.synth.common import NOTICE_FILE, SynthResult, age_text, prepare_out_dir
from skinkeras.data.synth.eis import check_effect_size, lesion_parameters, measure
from skinkeras.errors import DataError

HAM_DIAGNOSES = {  # HAM10000 dx -> (label, diagnosis)
    "mel": ("malignant", "melanoma"),
    "bcc": ("malignant", "bcc"),
    "akiec": ("malignant", "akiec"),
    "nv": ("benign", "nevus"),
    "bkl": ("benign", "seborrheic_keratosis"),
    "df": ("benign", "dermatofibroma"),
    "vasc": ("benign", "vascular"),
}
PAPER_COUNTS = {"benign": 631, "malignant": 357}  # paper 000: 988 lesions
DEFAULT_LESIONS = sum(PAPER_COUNTS.values())
DEFAULT_EFFECT_SIZE = 0.12  # rough GRU AUC 0.85 on the default set (module docstring)
IMAGE_CHOICES = ("first", "random")
# Independent random streams: which lesions, which image of a lesion, and the spectra.
PICK_STREAM, IMAGE_STREAM, SPECTRA_STREAM = 1, 2, 3
SEMI_SYNTHETIC_NOTICE = (
    "SEMI-SYNTHETIC DATA. The dermoscopy images are REAL (HAM10000, Tschandl, Rosendahl & Kittler, "
    "Sci. Data 5:180161, 2018, CC BY-NC 4.0: credit the source, no commercial use); the impedance "
    "spectra are GENERATED by a program (Cole model, skinkeras.data.synth) and carry the label's "
    "signal only: given the label they are independent of the image. No patient was ever measured "
    "with EIS. Never use this set to judge the clinical value of impedance spectroscopy."
)


def _stream(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream])


def ham_lesions(samples: pd.DataFrame, image_choice: str = "first", seed: int = 0) -> pd.DataFrame:
    """One row per HAM10000 lesion (sorted by lesion_id): its image, label and diagnosis.

    `samples` is `load_ham10000(root).samples`. "first" takes the first image_id in sorted order
    (stable whatever the CSV order); "random" a seeded choice among the lesion's images.
    """
    if image_choice not in IMAGE_CHOICES:
        raise DataError(f"image choice must be one of {list(IMAGE_CHOICES)}. Received: {image_choice!r}")
    unknown = sorted(set(samples["label"]) - set(HAM_DIAGNOSES))
    if unknown:
        raise DataError(f"HAM10000 labels {unknown} have no benign/malignant mapping; known: {sorted(HAM_DIAGNOSES)}")
    ordered = samples.sort_values(["lesion_id", "image_id"], kind="stable")
    if image_choice == "first":
        chosen = ordered.drop_duplicates("lesion_id", keep="first")
    else:
        rng = _stream(seed, IMAGE_STREAM)
        positions = ordered.reset_index(drop=True).groupby("lesion_id", sort=True).indices
        chosen = ordered.iloc[[rows[int(rng.integers(len(rows)))] for _, rows in sorted(positions.items())]]
    lesions = pd.DataFrame(
        {
            "lesion_id": chosen["lesion_id"].astype(str),
            "image_id": chosen["image_id"].astype(str),
            "image_path": chosen["image_path"].astype(str),
            "dx": chosen["label"],
            "label": [HAM_DIAGNOSES[dx][0] for dx in chosen["label"]],
            "diagnosis": [HAM_DIAGNOSES[dx][1] for dx in chosen["label"]],
            "age": chosen["age"].astype(float),
            "sex": chosen["sex"].astype(str),
            "site": chosen["site"].astype(str),
        }
    )
    return lesions.reset_index(drop=True)


def allocate(counts: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` over the keys in proportion to `counts` (largest remainder, ties by name)."""
    available = sum(counts.values())
    shares = {k: total * v / available for k, v in counts.items()} if available else {k: 0.0 for k in counts}
    out = {k: int(np.floor(s)) for k, s in shares.items()}
    for key in sorted(counts, key=lambda k: (-(shares[k] - out[k]), k))[: total - sum(out.values())]:
        out[key] += 1
    return out


def lesion_targets(lesions: pd.DataFrame, n) -> dict[tuple[str, str], int]:
    """{(label, diagnosis): how many to draw} for `n` lesions ("all", or an int; see the module docstring)."""
    per_diagnosis = lesions.groupby(["label", "diagnosis"]).size()
    if n == "all":
        return {key: int(v) for key, v in per_diagnosis.items()}
    if int(n) != n or n < 2:
        raise DataError(f"--lesions must be 'all' or an integer >= 2. Received: {n!r}")
    benign = int(round(n * PAPER_COUNTS["benign"] / DEFAULT_LESIONS))
    targets = {}
    for label, count in (("benign", benign), ("malignant", int(n) - benign)):
        in_label = {d: int(v) for (lab, d), v in per_diagnosis.items() if lab == label}
        if count > sum(in_label.values()):
            raise DataError(f"--lesions {n} needs {count} {label} lesions; the HAM10000 folder has "
                            f"{sum(in_label.values())}")
        targets.update({(label, d): k for d, k in allocate(in_label, count).items()})
    return targets


def pick_lesions(lesions: pd.DataFrame, n=DEFAULT_LESIONS, seed: int = 0) -> pd.DataFrame:
    """The lesions of the set (sorted by lesion_id), seeded and stratified by diagnosis within label.

    A pure function (no files): `pick_lesions(ham_lesions(samples))` shows the default draw.
    """
    rng = _stream(seed, PICK_STREAM)
    chosen = []
    for (label, diagnosis), count in sorted(lesion_targets(lesions, n).items()):
        pool = lesions.index[(lesions["label"] == label) & (lesions["diagnosis"] == diagnosis)].to_numpy()
        chosen.append(np.sort(rng.choice(pool, size=count, replace=False)))
    picked = lesions.loc[np.concatenate(chosen) if chosen else []]
    return picked.sort_values("lesion_id").reset_index(drop=True)


def draw_spectra(labels, seed: int = 0, effect_size: float = DEFAULT_EFFECT_SIZE,
                 max_measurements: int = 6) -> list[np.ndarray]:
    """complex64 (1..max_measurements, 10, 35) per label, from the labels alone (own random stream)."""
    check_effect_size(effect_size)
    rng = _stream(seed, SPECTRA_STREAM)
    spectra = []
    for label in labels:
        count = int(rng.integers(1, max_measurements + 1))
        spectra.append(measure(rng, lesion_parameters(rng, label, effect_size), count))
    return spectra


def synthesize_eis_paired(out_dir, root, *, images_from: str = "ham10000", lesions=DEFAULT_LESIONS,
                          seed: int = 0, effect_size: float | None = None, force: bool = False,
                          image_choice: str = "first", max_measurements: int = 6) -> SynthResult:
    """Write the semi-synthetic EIS set (real images, generated spectra) to `out_dir`; see the module docstring."""
    if images_from != "ham10000":
        raise DataError(f"--images-from supports only ham10000. Received: {images_from!r}")
    if root is None or str(root) == "":
        raise DataError("--images-from ham10000 needs --root, the HAM10000 folder")
    from skinkeras.data.ham10000 import load_ham10000

    effect_size = DEFAULT_EFFECT_SIZE if effect_size is None else float(effect_size)
    check_effect_size(effect_size)
    table = load_ham10000(root)
    picked = pick_lesions(ham_lesions(table.samples, image_choice, seed), lesions, seed)
    spectra = draw_spectra(picked["label"], seed, effect_size, max_measurements)
    out = prepare_out_dir(out_dir, force)
    (out / SPECTRA_DIR).mkdir(exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    rows = []
    for row, lesion_spectra in zip(picked.itertuples(index=False), spectra):
        image = f"images/{row.lesion_id}.jpg"
        shutil.copyfile(row.image_path, out / image)
        np.save(out / SPECTRA_DIR / f"{row.lesion_id}.npy", lesion_spectra)
        rows.append((row.lesion_id, row.label, row.diagnosis, age_text(row.age), row.sex, row.site, image,
                     row.image_id, row.dx))
    header = ("lesion_id", "label", "diagnosis", "age", "sex", "site", "image", "ham_image_id", "ham_dx")
    with open(out / METADATA_CSV, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    counts = {c: int((picked["label"] == c).sum()) for c in CLASS_NAMES}
    total = int(sum(len(s) for s in spectra))
    diagnoses = ", ".join(f"{d} {k}" for d, k in picked["diagnosis"].value_counts().sort_index().items())
    details = [
        "layout: eis (skinkeras.data.eis)",
        f"lesions: {len(picked)} ({', '.join(f'{k} {v}' for k, v in counts.items())}); diagnoses: {diagnoses}",
        f"measurements: {total} (1-{max_measurements} per lesion)",
        f"images: one per lesion from {Path(root).resolve()} (HAM10000, image choice {image_choice!r}), "
        "copied to images/<lesion_id>.jpg; ham_image_id / ham_dx name the source",
        f"spectra: Cole model, effect size {effect_size:g}, drawn from the label alone",
        f"seed: {seed}; lesions option: {lesions}",
        "generator: skinkeras.data.synth.eis_paired (deterministic given the seed and the HAM folder)",
    ]
    (out / NOTICE_FILE).write_text(SEMI_SYNTHETIC_NOTICE + "\n\n" + "\n".join(details) + "\n", encoding="utf-8")
    return SynthResult("eis (semi-synthetic)", out, len(picked),
                       [METADATA_CSV, f"{SPECTRA_DIR}/", "images/", NOTICE_FILE], counts,
                       notes=f"{total} generated measurements; diagnoses: {diagnoses}", notice=SEMI_SYNTHETIC_NOTICE)
