"""Shared fixtures: where the real data is, and small generated datasets.

Real data lives in ../shared/data (never in the repository); tests that need it use the
`ham10000_root` / `isic2017_root` fixtures, which skip with a reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# No network in tests: configs asking for ImageNet weights fall back at once (skinkeras.models.pretrained).
os.environ.setdefault("SKINKERAS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SKINKERAS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _real_root(name: str, marker_file: str) -> Path:
    root = SHARED_DATA / name
    if not (root / marker_file).exists():
        pytest.skip(f"real data not found at {root} (set SKINKERAS_SHARED_DATA)")
    return root


# `make test` runs two pytest-xdist processes with `--dist loadgroup`. A file's tests stay in one
# process, so its module fixtures (a trained tiny run, a fake run cache) are built once; files of
# independent, costly tests are spread over both processes instead.
# Files that share test_export.py's session cache of fake runs and exports run in one process, so
# the cache is built once.
SPREAD = {"test_backbones.py"}
SHARED = {name: "export_cache" for name in
          ("test_export.py", "test_predict.py", "test_batch_predict.py", "test_evaluate_export.py",
           "test_bench_predict.py")}


# The costliest groups go first, so that neither process is left with one of them at the end.
FIRST = ("test_two_stage_deploy.py", "test_eis_grid.py", "test_fusion_grid.py", "test_quantization_aware.py", "test_training.py", "test_legacy_runs.py",
         "test_task_plugins.py", "test_multiworker.py")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the xdist_group marks into node-id suffixes
def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("xdist"):
        return
    items.sort(key=lambda item: FIRST.index(item.path.name) if item.path.name in FIRST else len(FIRST))
    for item in items:
        if item.path.name not in SPREAD:
            item.add_marker(pytest.mark.xdist_group(SHARED.get(item.path.name, item.path.stem)))


@pytest.fixture(scope="session")
def ham10000_root() -> Path:
    return _real_root("ham10000", "HAM10000_metadata.csv")


@pytest.fixture(scope="session")
def ham10000_originals_root() -> Path:
    return _real_root("ham10000_originals", "HAM10000_metadata.csv")


@pytest.fixture(scope="session")
def isic2017_root() -> Path:
    return _real_root("isic2017", "ISIC-2017_Training_Part3_GroundTruth.csv")
