"""Loading `.keras` files that contain skinkeras layers and losses, in Keras safe mode.

Keras finds registered classes only once their modules have been imported. Which modules register
what is said once, by each task (`Task.serializable` in `skinkeras.tasks`): `load_model`
imports those of every registered task (packages with all their submodules), then loads with
`safe_mode=True` (no arbitrary code: lambdas in a file from elsewhere are refused).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from skinkeras.errors import SkinkerasError

_imported: set[str] = set()


def import_registered_objects() -> None:
    """Imports every module that a registered task names as registering serializable Keras objects."""
    from skinkeras.tasks import all_tasks

    for task in all_tasks():
        for name in task.serializable:
            _import_with_submodules(name)


def _import_with_submodules(name: str) -> None:
    if name in _imported:
        return
    module = importlib.import_module(name)
    _imported.add(name)
    if hasattr(module, "__path__"):
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{name}."):
            if info.name not in _imported:
                importlib.import_module(info.name)
                _imported.add(info.name)


def load_model(path, *, compile: bool = True):
    """Loads a `.keras` model file in safe mode, with every skinkeras object registered."""
    import keras

    path = Path(path)
    if not path.exists():
        raise SkinkerasError(f"no model file at {path}")
    import_registered_objects()
    return keras.models.load_model(path, safe_mode=True, compile=compile)
