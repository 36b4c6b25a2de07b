"""SavedModel export of a Keras model, written atomically.

The model is exported into a temporary sibling folder and renamed into place only when complete, so
an interrupted export never leaves a directory that looks like a finished SavedModel.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from skinkeras.errors import SkinkerasError


def export_saved_model(model, out_dir, *, force: bool = False) -> Path:
    """Exports `model` (its `serve` endpoint: the model's own inputs) to `out_dir`."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not force:
            raise SkinkerasError(f"{out_dir} exists; choose another path or pass --force to replace it")
        shutil.rmtree(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # left by an interrupted export
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    model.export(str(partial), format="tf_saved_model", verbose=False)
    partial.rename(out_dir)
    return out_dir
