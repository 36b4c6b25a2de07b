"""`skinkeras bench predict`: images/s of predict --csv against single-image calls, same answers."""

from __future__ import annotations

import json

from tests.test_export import fake_run


def test_batch_and_single_paths_are_timed_on_the_same_images(tmp_path_factory, capsys):
    from skinkeras.cli import main

    run_dir = fake_run(tmp_path_factory)
    assert main(["bench", "predict", str(run_dir), "--images", "6", "--size", "30x40", "--batch-size", "4", "--repeats", "1",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 6 and result["failed"] == 0 and result["kind"] == "run"
    assert result["csv_images_per_s"] > 0 and result["single_images_per_s"] > 0
    assert abs(result["speedup"] - result["csv_images_per_s"] / result["single_images_per_s"]) < 1e-9
    assert result["max_abs_diff"] < 1e-4  # the batch path answers as the single one
    assert main(["bench", "predict", str(run_dir), "--size", "big"]) == 2
