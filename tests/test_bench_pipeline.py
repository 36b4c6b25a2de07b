"""`skinkeras bench pipeline` on a few generated files: JSON keys and positive numbers (no timing asserts)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

cv2 = pytest.importorskip("cv2")

from skinkeras.bench import pipeline as bench  # noqa: E402
from skinkeras.bench.baseline_loader import baseline_batches  # noqa: E402


def _ham_like_root(tmp_path, n=10):
    images = tmp_path / "HAM10000_images"
    images.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        image_id = f"ISIC_{i:07d}"
        cv2.imwrite(str(images / f"{image_id}.jpg"), rng.integers(0, 255, (15, 20, 3), dtype=np.uint8))
        rows.append(
            {
                "lesion_id": f"HAM_{i:07d}",
                "image_id": image_id,
                "dx": ("nv", "mel", "bkl")[i % 3],
                "dx_type": "histo",
                "age": 40.0 + i,
                "sex": "male",
                "localization": "back",
            }
        )
    pd.DataFrame(rows).to_csv(tmp_path / "HAM10000_metadata.csv", index=False)
    return tmp_path


def test_baseline_loader_shapes_and_range(tmp_path):
    root = _ham_like_root(tmp_path, n=5)
    paths = sorted(str(p) for p in (root / "HAM10000_images").glob("*.jpg"))
    batches = list(baseline_batches(paths, image_size=16, batch_size=2))
    assert [b.shape for b in batches] == [(2, 16, 16, 3), (2, 16, 16, 3), (1, 16, 16, 3)]
    stacked = np.concatenate(batches)
    assert stacked.dtype == np.float32 and stacked.min() >= 0 and stacked.max() <= 255


def test_minimal_table_matches_registry_loader(tmp_path):
    root = _ham_like_root(tmp_path, n=4)
    minimal = bench._minimal_ham10000_table(root)
    loaded = bench.load_samples(root)
    assert len(minimal) == len(loaded) == 4
    assert minimal.class_names == loaded.class_names
    assert sorted(minimal.samples["image_path"]) == sorted(loaded.samples["image_path"])


@pytest.mark.slow  # a benchmark smoke test of ~20 s; the pipeline itself is tested in test_pipeline.py
def test_bench_pipeline_json(tmp_path, capsys):
    root = _ham_like_root(tmp_path, n=10)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        ["--root", str(root), "--image-size", "16", "--batch-size", "2", "--limit", "8", "--small", "4",
         "--baseline-limit", "6", "--skip-per-batch", "--json"]
    )
    assert bench.run(args) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("pipeline_images_per_s", "baseline_images_per_s", "speedup", "peak_rss_mb_small",
                "peak_rss_mb_full", "memory_ratio", "settings", "runs", "targets", "meets_targets"):
        assert key in report
    for key in ("pipeline_images_per_s", "baseline_images_per_s", "speedup", "peak_rss_mb_small",
                "peak_rss_mb_full", "memory_ratio"):
        assert report[key] > 0
    assert report["runs"]["pipeline_full"]["images"] == 8  # training drops no full batch of 2
    assert report["runs"]["pipeline_small"]["images"] == 4
    assert report["runs"]["baseline"]["images"] == 6
    assert set(report["runs"]) == {"pipeline_small", "pipeline_full", "baseline"}
    assert report["settings"]["image_size"] == 16 and report["settings"]["cpu_count"] >= 1
    assert len(report["runs"]["baseline"]["images_per_s_each"]) == 1
    for run in report["runs"].values():
        assert run["cpu_percent"] > 0 and run["images_per_cpu_s"] > 0


def test_bench_is_registered_in_cli():
    from skinkeras.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["bench", "pipeline", "--root", "x", "--json"])
    assert args.func is bench.run and args.json


def test_baseline_backends_agree_on_geometry(tmp_path):
    """PIL and scipy warps draw the same transform from the same seed: images must be close."""
    yy, xx = np.mgrid[:24, :24]
    paths = []
    for i in range(3):  # smooth images: the two half-pixel conventions differ a little
        smooth = np.stack([xx * 4 + i * 10, yy * 4, (xx + yy) * 2], axis=-1).astype(np.uint8)
        paths.append(str(tmp_path / f"smooth{i}.png"))
        cv2.imwrite(paths[-1], smooth)
    pil = np.concatenate(list(baseline_batches(paths, 24, 3, seed=4, backend="pil")))
    scipy = np.concatenate(list(baseline_batches(paths, 24, 3, seed=4, backend="scipy")))
    # Fill modes differ (black vs nearest): compare the centre, which stays inside the image.
    centre = (slice(None), slice(8, 16), slice(8, 16))
    assert np.median(np.abs(pil[centre] - scipy[centre])) < 8.0  # another seed gives ~29
    assert np.abs(pil[centre] - scipy[centre]).max() > 0  # two different implementations
    with pytest.raises(ValueError, match="backend"):
        next(baseline_batches(paths, 24, 3, backend="cv2"))
