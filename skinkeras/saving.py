"""Loading `.keras` files that contain skinkeras layers and losses, in Keras safe mode.

Keras finds registered classes only once their modules have been imported; `load_model` imports
every module that registers one, then loads with `safe_mode=True` (no arbitrary code: lambdas in a
file from elsewhere are refused).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from skinkeras.errors import SkinkerasError

_REGISTERING_PACKAGES = ("skinkeras.models",)
_REGISTERING_MODULES = ("skinkeras.preprocessing.scaling", "skinkeras.training.losses", "skinkeras.segmentation.losses")


def import_registered_objects() -> None:
    """Imports every skinkeras module that registers serializable Keras objects."""
    for name in _REGISTERING_MODULES:
        importlib.import_module(name)
    for package_name in _REGISTERING_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            importlib.import_module(info.name)


def load_model(path, *, compile: bool = True):
    """Loads a `.keras` model file in safe mode, with every skinkeras object registered."""
    import keras

    path = Path(path)
    if not path.exists():
        raise SkinkerasError(f"no model file at {path}")
    import_registered_objects()
    return keras.models.load_model(path, safe_mode=True, compile=compile)
