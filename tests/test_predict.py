"""`skinkeras predict` on a run, a SavedModel and a .tflite file, and its bad-input messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_export import exported, fake_run, random_pixels


@pytest.fixture()
def images(tmp_path):
    import cv2

    paths = []
    for index, (height, width) in enumerate([(45, 60), (120, 90)]):
        path = tmp_path / f"lesion_{index}.png"
        cv2.imwrite(str(path), random_pixels((height, width, 3), seed=index))
        paths.append(str(path))
    return paths


def predict_json(capsys, *args):
    from skinkeras.cli import main

    assert main(["predict", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_saved_model_and_tflite_give_the_same_probabilities(tmp_path_factory, images, capsys):
    run_dir, saved = exported(tmp_path_factory)
    _, tflite = exported(tmp_path_factory, "tflite", "float32")
    metadata = ["--age", "55", "--sex", "female", "--site", "lower extremity"]
    by_kind = {
        "run": predict_json(capsys, run_dir, *images, *metadata),
        "saved_model": predict_json(capsys, saved["path"], *images, *metadata),
        "tflite": predict_json(capsys, Path(tflite["path"]) / "model.tflite", *images, *metadata),
    }
    class_names = json.loads((run_dir / "preprocessing.json").read_text())["class_names"]
    reference = by_kind["run"]
    assert [r["image"] for r in reference] == images
    for result in reference:
        probs = list(result["probabilities"].values())
        assert sorted(result["probabilities"]) == sorted(class_names)
        assert probs == sorted(probs, reverse=True) and result["top_class"] == next(iter(result["probabilities"]))
        assert abs(sum(probs) - 1.0) < 1e-4
    for kind, results in by_kind.items():
        for got, want in zip(results, reference):
            assert got["top_class"] == want["top_class"], kind
            for name, p in want["probabilities"].items():
                assert abs(got["probabilities"][name] - p) <= 1e-4, (kind, name)
    # Metadata changes the answer of a metadata model (so the values really reach it).
    unknown = predict_json(capsys, run_dir, images[0])[0]["probabilities"]
    assert max(abs(unknown[k] - reference[0]["probabilities"][k]) for k in unknown) > 1e-5


def test_plain_output_lists_every_class(tmp_path_factory, images, capsys):
    from skinkeras.cli import main

    run_dir, _ = exported(tmp_path_factory)
    assert main(["predict", str(run_dir), images[0]]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(images[0] + ": ")
    assert len(out) == 1 + len(json.loads((run_dir / "preprocessing.json").read_text())["class_names"])


@pytest.mark.parametrize("args, message", [
    (["--site", "elbow"], "--site must be one of: abdomen, acral, back"),
    (["--age", "150"], "--age must be in 0..120"),
    (["--age", "-1"], "--age must be in 0..120"),
    (["--sex", "x"], "--sex must be one of female, male, unknown"),
])
def test_bad_metadata_is_refused(tmp_path_factory, images, capsys, args, message):
    from skinkeras.cli import main

    run_dir, saved = exported(tmp_path_factory)
    for model in (run_dir, saved["path"]):
        assert main(["predict", str(model), images[0], *args]) == 2
        assert message in capsys.readouterr().err


def test_unreadable_files_are_named(tmp_path_factory, images, tmp_path, capsys):
    from skinkeras.cli import main

    _, saved = exported(tmp_path_factory)
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("this is not a picture")
    missing = tmp_path / "missing.png"
    for bad in (not_an_image, missing):
        assert main(["predict", saved["path"], images[0], str(bad)]) == 2
        err = capsys.readouterr().err
        assert str(bad) in err and err.startswith("skinkeras: error:")
    assert main(["predict", str(tmp_path), images[0]]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_heatmap_needs_a_run_and_writes_one_png_per_image(tmp_path_factory, images, tmp_path, capsys):
    from skinkeras.cli import main

    run_dir, saved = exported(tmp_path_factory)
    assert main(["predict", saved["path"], images[0], "--heatmap", str(tmp_path / "h.png")]) == 2
    assert "--heatmap needs a classification run directory" in capsys.readouterr().err
    results = predict_json(capsys, run_dir, *images, "--heatmap", tmp_path / "h.png")
    written = [Path(r["heatmap"]) for r in results]
    assert [p.name for p in written] == ["h_lesion_0.png", "h_lesion_1.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    single = predict_json(capsys, run_dir, images[0], "--heatmap", tmp_path / "one.png")
    assert Path(single[0]["heatmap"]).name == "one.png" and (tmp_path / "one.png").exists()


def test_model_without_metadata_ignores_the_metadata_checks_it_does_not_need(tmp_path_factory, images, capsys):
    run_dir = fake_run(tmp_path_factory, head="gap", metadata=None)
    result = predict_json(capsys, run_dir, images[0], "--site", "anything")[0]
    assert np.isclose(sum(result["probabilities"].values()), 1.0, atol=1e-4)


def test_heatmaps_never_overwrite_an_input_nor_share_a_path(tmp_path_factory, tmp_path, capsys):
    import cv2

    from skinkeras.cli import main

    run_dir, _ = exported(tmp_path_factory)
    a, b = tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"
    for seed, path in enumerate((a, b)):
        path.parent.mkdir()
        cv2.imwrite(str(path), random_pixels((45, 60, 3), seed=seed))
    cv2.imwrite(str(a.parent / "h_x.png"), random_pixels((45, 60, 3), seed=5))
    photos = {p: p.read_bytes() for p in (a, b, a.parent / "h_x.png")}
    # --heatmap naming the photo itself, or OUT_<stem>.png naming another input: refused before any work.
    for args in ([a, "--heatmap", a], [a, a.parent / "h_x.png", "--heatmap", a.parent / "h.png"]):
        assert main(["predict", str(run_dir), *map(str, args)]) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert "would overwrite the input image" in last, last
    assert all(path.read_bytes() == data for path, data in photos.items())
    # Two photos with one name: two heatmaps, not one written twice.
    results = predict_json(capsys, run_dir, a, b, "--heatmap", tmp_path / "out.png")
    written = [Path(r["heatmap"]) for r in results]
    assert [p.name for p in written] == ["out_x_1.png", "out_x_2.png"]
    assert written[0].read_bytes() != written[1].read_bytes()
    assert all(path.read_bytes() == data for path, data in photos.items())
