"""How figures are written in reports, tables, model cards and JSON files (one place for all).

Numbers: three decimals, "n/a" for missing or non-finite values; intervals "[low, high]" in
reports and "low - high" in model cards; Markdown tables with `|` escaped; JSON without NaN.
"""

from __future__ import annotations

import json
import math

import numpy as np

from skinkeras.files import json_default

MISSING = "n/a"


def is_number(value) -> bool:
    """A finite real number (NumPy scalars included), not a bool."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value, digits: int = 3, *, integers: bool = False) -> str:
    """`value` with `digits` decimals ("n/a" when missing); with `integers`, ints stay whole."""
    if not is_number(value):
        return MISSING
    if integers and isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def interval(ci, *, style: str = "brackets", digits: int = 3) -> str:
    """A (low, high) pair as "[low, high]" (style "brackets") or "low - high" (style "dash")."""
    if not ci or len(ci) != 2 or not all(is_number(v) for v in ci):
        return MISSING
    low, high = (f"{float(v):.{digits}f}" for v in ci)
    return f"[{low}, {high}]" if style == "brackets" else f"{low} - {high}"


def with_interval(value, ci, *, style: str = "dash") -> str:
    """"0.812 (0.790 - 0.833)", or just the value when there is no interval."""
    text = interval(ci, style=style)
    if style == "brackets":
        return number(value) + (f" {text}" if text != MISSING else "")
    return number(value) + (f" ({text})" if text != MISSING else "")


def count(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "?"


def size(num_bytes) -> str:
    """Bytes in B / KiB / MiB / GiB."""
    num_bytes = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:,.0f} {unit}" if unit == "B" else f"{num_bytes:,.2f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:,.2f} GiB"


def plain(value) -> str:
    """Any value as a short table cell (bools yes/no, floats to 6 significant digits)."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, float) for v in value):
        return "[" + ", ".join(f"{v:.6g}" for v in value) + "]"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def markdown_table(header, rows) -> list[str]:
    """Lines of a Markdown table; `|` and newlines inside cells are escaped."""
    def cell(value):
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def sort_key(value) -> float:
    """For picking the best row: a missing value sorts below every number."""
    return float(value) if is_number(value) else -1.0


def clean_json(value):
    """NaN / inf -> None, recursively: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value) -> str:
    """A metrics-style JSON document: indented, NaN-free, NumPy-aware, newline-terminated."""
    return json.dumps(clean_json(value), indent=2, default=json_default) + "\n"
