"""Writing files so that a kill never leaves half of one: text and JSON through a `.partial`
sibling renamed into place, JSON with NumPy scalars and arrays as plain values."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def atomic_write_text(path, text: str) -> Path:
    """Writes `text` to `path` through a `.partial` sibling renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


def json_default(value):
    """`json.dumps(default=...)` for NumPy scalars and arrays (non-finite floats become None)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_json(path, data) -> Path:
    """Indented JSON, NumPy-aware, written atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=json_default) + "\n")
