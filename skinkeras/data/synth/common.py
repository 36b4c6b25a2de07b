"""What every generator shares: the output folder, the not-medical-data notice, plausible metadata.

NOT medical data: everything written by `skinkeras.data.synth` is drawn by a program.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from skinkeras.errors import DataError

NOTICE_FILE = "README_SYNTHETIC.txt"
NOTICE = (
    "GENERATED DATA - NOT MEDICAL DATA. These files were drawn by a program (skinkeras.data.synth): "
    "lesion-like blobs and simulated measurements, laid out like a real dataset so that code can be "
    "tested. They show no patient and must never be used to judge clinical performance."
)

# HAM10000's localization vocabulary with rough frequencies of the release.
SITES = (
    "back", "lower extremity", "trunk", "upper extremity", "abdomen", "face", "chest", "foot",
    "unknown", "neck", "scalp", "hand", "ear", "genital", "acral",
)
SITE_WEIGHTS = np.array([1745, 1668, 1124, 861, 849, 602, 321, 248, 183, 132, 103, 71, 43, 40, 3], float)


@dataclasses.dataclass
class SynthResult:
    """What a generator wrote."""

    name: str
    out_dir: Path
    n_images: int
    files: list[str]  # main files and folders, relative to out_dir
    class_counts: dict[str, int]
    notes: str = ""
    notice: str = NOTICE  # what the folder's README_SYNTHETIC.txt says (semi-synthetic sets differ)

    def describe(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.class_counts.items())
        lines = [f"wrote a generated {self.name} dataset to {self.out_dir}: {self.n_images} samples ({counts})"]
        lines += [f"  {f}" for f in self.files]
        if self.notes:
            lines.append(self.notes)
        lines.append(self.notice)
        return "\n".join(lines)


def prepare_out_dir(out_dir, force: bool = False) -> Path:
    """Create `out_dir`; refuse a non-empty one unless `force` (then files are overwritten in place)."""
    path = Path(out_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise DataError(f"output path exists and is not a folder: {path}")
    if path.is_dir() and any(os.scandir(path)) and not force:
        raise DataError(f"output folder is not empty: {path} (use --force / force=True to write into it)")
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def write_notice(out_dir: Path, name: str, n: int, seed: int, details: str = "") -> None:
    text = [
        NOTICE,
        "",
        f"layout: {name}",
        f"samples: {n}",
        f"seed: {seed}",
        "generator: skinkeras.data.synth (deterministic given the seed)",
    ]
    if details:
        text += ["", details]
    (out_dir / NOTICE_FILE).write_text("\n".join(text) + "\n", encoding="utf-8")


def check_n(n: int, minimum: int, name: str) -> None:
    if int(n) != n or n < minimum:
        raise DataError(f"a generated {name} dataset needs n >= {minimum} samples. Received: n={n}")


def parse_image_size(value) -> tuple[int, int] | None:
    """'200x150' or (200, 150) -> (width, height)."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.lower().replace(" ", "").split("x")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise DataError(f"image size must look like WIDTHxHEIGHT (e.g. 200x150). Received: {value!r}")
        value = (int(parts[0]), int(parts[1]))
    width, height = (int(v) for v in value)
    if width < 16 or height < 16 or width > 4096 or height > 4096:
        raise DataError(f"image size must be 16..4096 pixels a side. Received: {width}x{height}")
    return width, height


def class_sequence(rng: np.random.Generator, n: int, classes: Sequence[str], weights: Sequence[float],
                   minimum_each: int = 2) -> list[str]:
    """`n` class names drawn with `weights`, each class at least `minimum_each` times when n allows."""
    weights = np.asarray(weights, float)
    forced = []
    if n >= minimum_each * len(classes):
        forced = [c for c in classes for _ in range(minimum_each)]
    drawn = list(rng.choice(list(classes), size=n - len(forced), p=weights / weights.sum()))
    sequence = forced + [str(c) for c in drawn]
    rng.shuffle(sequence)
    return sequence


def draw_age(rng: np.random.Generator, mean: float, missing: float = 0.02) -> float:
    """Age in 5-year steps within 5..85 (as the releases round them), NaN with probability `missing`."""
    if rng.random() < missing:
        return float("nan")
    return float(np.clip(np.round(rng.normal(mean, 15) / 5) * 5, 5, 85))


def draw_sex(rng: np.random.Generator, unknown: float = 0.02) -> str:
    r = rng.random()
    if r < unknown:
        return "unknown"
    return "male" if r < unknown + (1 - unknown) * 0.54 else "female"


def draw_site(rng: np.random.Generator) -> str:
    return str(rng.choice(SITES, p=SITE_WEIGHTS / SITE_WEIGHTS.sum()))


def age_text(age: float, missing: str = "") -> str:
    return missing if np.isnan(age) else f"{age:.1f}"
