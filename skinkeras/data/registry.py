"""Dataset registry: name -> loader(root, **options) -> SampleTable.

Loaders register themselves with `@register_dataset("name")`; the built-in ones (ham10000,
isic2017, derm7pt, eis, folder) are imported the first time the registry is asked, so importing
`skinkeras.data` stays cheap. The first line of a loader's docstring is its one-line description
(`skinkeras data list`).
"""

from __future__ import annotations

import importlib
from typing import Callable

from skinkeras.data.table import SampleTable
from skinkeras.errors import SkinkerasError

Loader = Callable[..., SampleTable]

BUILTIN_MODULES = (
    "skinkeras.data.ham10000",
    "skinkeras.data.isic2017",
    "skinkeras.data.derm7pt",
    "skinkeras.data.eis",
    "skinkeras.data.folder",
)

_LOADERS: dict[str, Loader] = {}
_builtins_loaded = False


class UnknownDatasetError(SkinkerasError, ValueError):
    """An unknown dataset name (a ValueError too, for library callers)."""


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator registering `loader(root, **options) -> SampleTable` under `name`."""
    if not name or name != name.strip().lower():
        raise ValueError(f"dataset names are non-empty lower case. Received: name={name!r}")

    def decorate(loader: Loader) -> Loader:
        existing = _LOADERS.get(name)
        if existing is not None and existing is not loader and (
            existing.__module__,
            existing.__qualname__,
        ) != (loader.__module__, loader.__qualname__):
            raise ValueError(f"dataset {name!r} is already registered by {existing.__module__}.{existing.__qualname__}")
        _LOADERS[name] = loader
        return loader

    return decorate


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    _load_builtins()
    return sorted(_LOADERS)


def get_dataset(name: str) -> Loader:
    """The loader registered under `name`; UnknownDatasetError listing the valid names otherwise."""
    _load_builtins()
    try:
        return _LOADERS[name]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; valid names: {', '.join(sorted(_LOADERS))}"
        ) from None


def describe_dataset(name: str) -> str:
    """First line of the loader's docstring."""
    doc = (get_dataset(name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def load_dataset(name: str, root, **options) -> SampleTable:
    """Read the dataset `name` from `root` (options are passed to its loader)."""
    return get_dataset(name)(root, **options)
