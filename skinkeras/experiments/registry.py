"""Finds named experiment configs.

An experiment is a Python file `NAME.py` defining `get_config() -> ExperimentConfig`; its module
docstring gives the command and the paper's reported result. They are looked up in `apps/configs/`
of this checkout, one subfolder per system (`apps/configs/two_stage/isic2017_two_stage.py` is the
experiment `isic2017_two_stage`), and in the folders listed in `SKINKERAS_CONFIG_PATH`
(os.pathsep-separated, subfolders included), so a user's own experiments fit in without editing
the package. A path to a `.py` file works as a name.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

from skinkeras.errors import ConfigError
from skinkeras.experiments.config import ExperimentConfig

BUILTIN_CONFIG_DIR = Path(__file__).resolve().parents[2] / "apps" / "configs"


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    path: Path
    doc: str

    @property
    def summary(self) -> str:
        lines = [line.strip() for line in self.doc.strip().splitlines() if line.strip()]
        return lines[0] if lines else ""

    def get_config(self) -> ExperimentConfig:
        module = _load_module(self.path)
        config = module.get_config()
        if not isinstance(config, ExperimentConfig):
            raise ConfigError(f"{self.path}: get_config() must return an ExperimentConfig")
        return dataclasses.replace(config, name=self.name)


def config_dirs() -> list[Path]:
    dirs = [BUILTIN_CONFIG_DIR]
    for entry in os.environ.get("SKINKERAS_CONFIG_PATH", "").split(os.pathsep):
        if entry:
            dirs.append(Path(entry))
    return dirs


def list_experiments() -> list[Experiment]:
    found: dict[str, Experiment] = {}
    for folder in config_dirs():
        if not folder.is_dir():
            continue
        seen: dict[str, Path] = {}
        for path in sorted(folder.rglob("*.py")):
            if path.name.startswith("_") or any(part.startswith((".", "_")) for part in path.relative_to(folder).parts):
                continue
            if path.stem in seen:
                raise ConfigError(f"two experiments are named {path.stem!r}: {seen[path.stem]} and {path}")
            seen[path.stem] = path
            found.setdefault(path.stem, _describe(path))
    return sorted(found.values(), key=lambda e: e.name)


def get_experiment(name: str) -> Experiment:
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"no experiment config file at {path}")
        return _describe(path)
    experiments = {e.name: e for e in list_experiments()}
    if name not in experiments:
        raise ConfigError(
            f"unknown experiment {name!r}; known: {', '.join(sorted(experiments)) or 'none'}"
        )
    return experiments[name]


def _describe(path: Path) -> Experiment:
    import ast

    try:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    except SyntaxError as error:
        raise ConfigError(f"{path} is not valid Python: {error}") from None
    return Experiment(name=path.stem, path=path.resolve(), doc=doc)


def _load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"skinkeras_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path} defines no get_config()")
    return module
