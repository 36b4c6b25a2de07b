"""Generated data in skinkeras's EIS layout (see `skinkeras.data.eis`), NOT medical data.

Each measurement is 10 bar permutations (depths) x 35 frequencies, 1 kHz..2.5 MHz, from the Cole
model of tissue impedance

    Z(w) = R_inf + (R_0 - R_inf) / (1 + (j w tau)^alpha)

with lesion parameters drawn per class and made depth dependent: deeper permutations (distant
bars) see lower resistance and a shorter time constant, and the melanoma effect (lower R_0, higher
characteristic frequency, broader dispersion: smaller alpha) grows with depth, as a lesion that
reaches deeper changes the deep measurements more. Each measurement adds an electrode-contact factor
and 1 % complex noise. The classes overlap, so the task is learnable but not trivial.
Lesions have 1-6 measurements (paper 000: 3,131 measurements of 988 lesions, ~3.2 each), and
`image_fraction` of them a paired dermoscopy image.
"""

from __future__ import annotations

import csv

import numpy as np

from skinkeras.data.eis import CLASS_NAMES, FREQUENCIES_HZ, METADATA_CSV, NUM_PERMUTATIONS, SPECTRA_DIR
from skinkeras.data.synth.common import (
    SynthResult,
    age_text,
    check_n,
    class_sequence,
    draw_age,
    draw_sex,
    draw_site,
    parse_image_size,
    prepare_out_dir,
    write_notice,
)
from skinkeras.data.synth.drawing import make_lesion, render, write_image
from skinkeras.errors import DataError

STYLE_OF_CLASS = {"benign": "nevus", "malignant": "melanoma"}
DIAGNOSIS_OF_CLASS = {"benign": "nevus", "malignant": "melanoma"}  # what the drawn lesions look like
CLASS_WEIGHTS = (0.7, 0.3)
DEFAULT_SIZE = (200, 150)
DEPTHS = np.linspace(0.0, 1.0, NUM_PERMUTATIONS)  # permutation 0: neighbouring bars (surface)


def check_effect_size(effect_size: float) -> None:
    """Negative effects would flip the class signal; huge ones leave the Cole model's range."""
    if not np.isfinite(effect_size) or not 0 <= effect_size <= 10:
        raise DataError(f"effect size must be within 0..10. Received: {effect_size!r}")


def cole_impedance(frequencies_hz, r0, r_inf, tau, alpha) -> np.ndarray:
    """Cole model; parameters broadcast against the frequency axis (the last one)."""
    omega = 2 * np.pi * np.asarray(frequencies_hz)
    r0, r_inf, tau, alpha = (np.asarray(v, float)[..., None] for v in (r0, r_inf, tau, alpha))
    return r_inf + (r0 - r_inf) / (1 + (1j * omega * tau) ** alpha)


def lesion_parameters(rng: np.random.Generator, label: str, effect_size: float = 1.0) -> dict[str, np.ndarray]:
    """Per-permutation Cole parameters (arrays of length 10) of one lesion.

    A malignant lesion ("malignant", or the old label "melanoma") gets an effect of
    `effect_size` x U(0.5, 1.2); a benign one none. The draws do not depend on `effect_size`, so
    the same seed gives the same lesions at every effect size, and 1.0 is the original generator.
    """
    effect = (effect_size if label in ("malignant", "melanoma") else 0.0) * rng.uniform(0.5, 1.2)
    reach = 0.3 + 0.7 * DEPTHS  # how much of the lesion each depth sees
    r0 = np.exp(rng.normal(np.log(60e3), 0.25)) * (1 - 0.6 * DEPTHS) * np.exp(-0.35 * effect * reach)
    r_inf = r0 * rng.uniform(0.015, 0.03)
    f_c = np.exp(rng.normal(np.log(20e3), 0.3)) * (1 + 0.8 * DEPTHS) * np.exp(0.45 * effect * reach)
    alpha = np.clip(rng.normal(0.78, 0.04) - 0.08 * effect * reach, 0.4, 0.95)
    return {"r0": r0, "r_inf": r_inf, "tau": 1 / (2 * np.pi * f_c), "alpha": alpha}


def measure(rng: np.random.Generator, parameters: dict[str, np.ndarray], count: int) -> np.ndarray:
    """`count` noisy measurements: complex64 (count, 10, 35)."""
    clean = cole_impedance(FREQUENCIES_HZ, **parameters)  # (10, 35)
    contact = np.exp(rng.normal(0, 0.08, (count, 1, 1)) + rng.normal(0, 0.02, (count, NUM_PERMUTATIONS, 1)))
    noise = 1 + 0.01 * (rng.normal(size=(count,) + clean.shape) + 1j * rng.normal(size=(count,) + clean.shape))
    return (clean[None] * contact * noise).astype(np.complex64)


def synthesize_eis(out_dir, n: int = 200, seed: int = 0, image_size=None, force: bool = False,
                   image_fraction: float = 0.9, max_measurements: int = 6, effect_size: float = 1.0) -> SynthResult:
    """Write `n` generated lesions in the EIS layout: spectra, metadata, optional dermoscopy images.

    Every malignant lesion is a melanoma and every benign one a nevus (the `diagnosis` column).
    `effect_size` scales the malignant spectra effect (see `lesion_parameters`; 1.0 = default).
    """
    check_effect_size(effect_size)
    check_n(n, 2, "eis")
    width, height = parse_image_size(image_size) or DEFAULT_SIZE
    out = prepare_out_dir(out_dir, force)
    rng = np.random.default_rng(seed)
    (out / SPECTRA_DIR).mkdir(exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    rows, counts, total = [], {c: 0 for c in CLASS_NAMES}, 0
    for number, label in enumerate(class_sequence(rng, n, CLASS_NAMES, CLASS_WEIGHTS)):
        lesion_id = f"EIS_{number:05d}"
        count = int(rng.integers(1, max_measurements + 1))
        np.save(out / SPECTRA_DIR / f"{lesion_id}.npy", measure(rng, lesion_parameters(rng, label, effect_size), count))
        image = ""
        if rng.random() < image_fraction:
            image = f"images/{lesion_id}.jpg"
            write_image(out / image, render(make_lesion(rng, STYLE_OF_CLASS[label]), rng, width, height)[0])
        age = draw_age(rng, 62 if label == "malignant" else 50)
        rows.append((lesion_id, label, DIAGNOSIS_OF_CLASS[label], age_text(age), draw_sex(rng), draw_site(rng), image))
        counts[label] += 1
        total += count
    with open(out / METADATA_CSV, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("lesion_id", "label", "diagnosis", "age", "sex", "site", "image"), *rows])
    details = f"measurements: {total}; Cole-model spectra (effect size {effect_size:g}); images {width}x{height}"
    write_notice(out, "eis", n, seed, details)
    return SynthResult("eis", out, n, [METADATA_CSV, f"{SPECTRA_DIR}/", "images/", "README_SYNTHETIC.txt"], counts,
                       notes=f"{total} measurements (10 permutations x 35 frequencies each)")
