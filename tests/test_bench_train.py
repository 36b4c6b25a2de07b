"""`skinkeras bench train` on a tiny model: the figures it reports are there and consistent."""

import json
import subprocess
import sys


def test_bench_train_reports_throughput_and_input_wait(tmp_path):
    from skinkeras.data.synth import synthesize

    root = tmp_path / "ham"
    synthesize("ham10000", root, n=60, seed=1, image_size=(48, 36))
    result = subprocess.run(
        [sys.executable, "-m", "skinkeras", "bench", "train", "--root", str(root), "--image-size", "64",
         "--batch-size", "8", "--steps", "3", "--warmup", "1", "--set", "model.backbone=TinyCNN",
         "--freeze-bn", "false", "true", "--json"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index("{"):])
    row, frozen = report["rows"]
    assert (row["freeze_bn"], frozen["freeze_bn"]) == (False, True) and frozen["train_images_per_second"] > 0
    assert row["backbone"] == "TinyCNN" and row["precision"] == "float32" and row["jit_compile"] == "auto"
    assert row["train_images_per_second"] > 0
    assert 0.0 <= row["input_wait_share"] < 1.0
    assert abs(row["mean_step_seconds"] * row["train_images_per_second"] - 8) < 0.05
