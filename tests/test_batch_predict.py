"""`skinkeras predict MODEL --csv IN.csv --out OUT.csv`: one row per input row, in order, errors per
row, the same probabilities as single-image predictions, batched model calls, memory flat in rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_export import exported, random_pixels


def read_rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture()
def batch(tmp_path):
    """Two readable images (one addressed relative to the CSV, one absolute) and every kind of bad row."""
    import cv2

    images = tmp_path / "photos"
    images.mkdir()
    for index, shape in enumerate([(45, 60, 3), (120, 90, 3)]):
        cv2.imwrite(str(images / f"lesion_{index}.png"), random_pixels(shape, seed=index))
    (images / "notes.jpg").write_text("this is not a picture")
    absolute = str(images / "lesion_1.png")
    rows = [
        ("photos/lesion_0.png", "55", "female", "lower extremity", ""),
        (absolute, "", "", "", ""),
        ("photos/missing.png", "", "", "", "cannot read image"),
        ("photos/notes.jpg", "", "", "", "cannot decode"),
        ("photos/lesion_0.png", "150", "", "", "age must be in 0..120"),
        ("photos/lesion_0.png", "", "", "elbow-pit", "site must be one of: abdomen"),
        ("photos/lesion_0.png", "", "x", "", "sex must be one of female, male, unknown"),
        ("", "", "", "", "empty image cell"),
        ("photos/lesion_1.png", "40", "male", "back", ""),
    ]
    path = tmp_path / "in.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "age", "sex", "site", "patient"])  # extra columns are ignored
        writer.writerows([row[:4] + (f"p{k}",) for k, row in enumerate(rows)])
    return path, rows


# The run variant (40 s: a Keras model traced per batch shape) is in the slow suite.
@pytest.mark.parametrize("kind", [pytest.param("run", marks=pytest.mark.slow), "saved_model", "tflite"])
def test_every_row_in_order_with_its_error_and_the_single_image_probabilities(tmp_path_factory, batch, kind, capsys):
    from skinkeras.cli import main
    from skinkeras.export.predictor import read_image
    from skinkeras.runs import load_predictor

    csv_path, rows = batch
    run_dir, saved = exported(tmp_path_factory)
    model = {"run": run_dir, "saved_model": saved["path"],
             "tflite": Path(exported(tmp_path_factory, "tflite", "float32")[1]["path"]) / "model.tflite"}[kind]
    out = csv_path.parent / f"out_{kind}.csv"
    assert main(["predict", str(model), "--csv", str(csv_path), "--out", str(out), "--batch-size", "2"]) == 1
    assert "9 rows: 3 predicted, 6 failed" in capsys.readouterr().out
    got = read_rows(out)
    predictor = load_predictor(model)
    names = predictor.class_names
    assert list(got[0]) == ["image", "top_class", *(f"prob_{n}" for n in names), "error"]
    assert [r["image"] for r in got] == [row[0] for row in rows]
    for row, want in zip(got, rows):
        assert want[4] in row["error"] if want[4] else row["error"] == "", (row, want)
        if want[4]:
            assert row["top_class"] == "" and all(row[f"prob_{n}"] == "" for n in names)
            continue
        path = want[0] if Path(want[0]).is_absolute() else csv_path.parent / want[0]
        single = predictor.predict(read_image(path), float(want[1]) if want[1] else None, want[2] or None,
                                   want[3] or None)
        probs = np.array([float(row[f"prob_{n}"]) for n in names])
        np.testing.assert_allclose(probs, single, atol=1e-5)
        assert row["top_class"] == names[int(np.argmax(single))]
    assert "missing.png" in got[2]["error"] and "notes.jpg" in got[3]["error"]


def test_all_rows_fine_exit_0_and_the_model_is_called_once_per_batch(tmp_path_factory, tmp_path, capsys):
    import cv2

    from skinkeras.export.batch import predict_csv
    from skinkeras.runs import load_predictor

    run_dir, _ = exported(tmp_path_factory)
    cv2.imwrite(str(tmp_path / "a.png"), random_pixels((45, 60, 3), seed=3))
    cv2.imwrite(str(tmp_path / "b.png"), random_pixels((50, 40, 3), seed=4))
    (tmp_path / "in.csv").write_text("image\n" + "a.png\nb.png\n" * 5)
    predictor = load_predictor(run_dir)
    calls = []
    model_call = predictor.keras_model.predict_on_batch
    predictor.keras_model.predict_on_batch = lambda inputs: calls.append(len(inputs["image"])) or model_call(inputs)
    summary = predict_csv(predictor, tmp_path / "in.csv", tmp_path / "out.csv", batch_size=4, chunk_rows=6)
    assert summary == {"rows": 10, "predicted": 10, "failed": 0, "out": str(tmp_path / "out.csv")}
    assert calls == [4, 2, 4], calls  # chunks of 6 rows, batches of 4: not one call per image
    rows = read_rows(tmp_path / "out.csv")
    assert [r["image"] for r in rows] == ["a.png", "b.png"] * 5 and all(r["error"] == "" for r in rows)
    assert rows[0]["prob_nv"] == rows[2]["prob_nv"] != rows[1]["prob_nv"]  # the same image, the same answer
    assert not (tmp_path / "out.csv.partial").exists()

    from skinkeras.cli import main

    assert main(["predict", str(run_dir), "--csv", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.csv"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["failed"] == 0


class _MeanColourPredictor:
    """A predictor without a model (probabilities from the mean colour): the streaming is what is measured."""

    def __init__(self):
        from skinkeras.export.serving import RunSpec

        self.spec = RunSpec(class_names=("r", "g", "b"), image_size=8, metadata=None)
        self.class_names = self.spec.class_names

    def predict_many(self, images, metadata):
        means = np.stack([image.reshape(-1, 3).mean(axis=0) for image in images]) + 1.0
        return means / means.sum(axis=1, keepdims=True)


def test_memory_stays_flat_in_the_number_of_rows(tmp_path):
    import tracemalloc

    import cv2

    from skinkeras.export.batch import predict_csv

    cv2.imwrite(str(tmp_path / "big.png"), random_pixels((200, 200, 3), seed=0))  # 120 kB decoded
    peaks = {}
    for rows in (100, 1000):
        (tmp_path / "in.csv").write_text("image,sex\n" + "big.png,female\n" * rows)
        tracemalloc.start()
        summary = predict_csv(_MeanColourPredictor(), tmp_path / "in.csv", tmp_path / "out.csv", chunk_rows=50)
        peaks[rows] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert summary["predicted"] == rows
        assert len(read_rows(tmp_path / "out.csv")) == rows
    # Holding every decoded image would take 1000 x 120 kB = 120 MB; the chunks take 50 at a time.
    assert peaks[1000] < 1.5 * peaks[100] + 1_000_000, peaks
    assert peaks[1000] < 20_000_000, peaks


@pytest.mark.parametrize("args, message", [
    (["--csv", "IN"], "--csv IN.csv needs --out OUT.csv"),
    (["--csv", "IN", "--out", "IN"], "is the input CSV"),
    (["--csv", "IN", "--out", "OUT", "--age", "50"], "--age is for image arguments"),
    (["IMG", "--csv", "IN", "--out", "OUT"], "--csv takes the images from"),
    (["--csv", "NOCOL", "--out", "OUT"], "needs a column 'image'"),
    (["--csv", "MISSING", "--out", "OUT"], "no such file"),
    (["IMG", "--out", "OUT"], "--out goes with --csv"),
    ([], "give image files, or --csv IN.csv --out OUT.csv"),
])
def test_bad_batch_requests_are_one_line_errors(tmp_path_factory, tmp_path, capsys, args, message):
    from skinkeras.cli import main

    _, saved = exported(tmp_path_factory)
    (tmp_path / "in.csv").write_text("image\nx.png\n")
    (tmp_path / "nocol.csv").write_text("path\nx.png\n")
    places = {"IN": tmp_path / "in.csv", "OUT": tmp_path / "out.csv", "NOCOL": tmp_path / "nocol.csv",
              "MISSING": tmp_path / "missing.csv", "IMG": tmp_path / "x.png"}
    assert main(["predict", saved["path"], *[str(places.get(a, a)) for a in args]]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after any TensorFlow start-up lines
    assert message in last and last.startswith("skinkeras: error:")
    assert (tmp_path / "in.csv").read_text() == "image\nx.png\n"  # the input is never touched
