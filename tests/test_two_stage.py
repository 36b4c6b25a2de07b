"""The two-stage ISIC 2017 pipeline (skinkeras.systems.two_stage) on generated data.

Stage 1 (the U-Net crop) is replaced by a stand-in crop function here, so these tests exercise the
split, the per-model classification runs, resume, the predictions, the ensembles and the report.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinkeras.errors import ConfigError, SkinkerasError
from skinkeras.experiments import ExperimentConfig, apply_overrides

TINY = [
    "task=two_stage",
    "data.dataset=isic2017",
    "data.image_size=32",
    "data.batch_size=8",
    "data.use_metadata=false",
    "model.metadata_branch=none",
    "train.epochs=1",
    "train.early_stopping_patience=0",
    "two_stage.backbones=MobileNetV3Small,MobileNetV2",
    "two_stage.hidden_units=16",
    "two_stage.lc_epochs=50",
]


def tiny_config(root: Path, *extra: str) -> ExperimentConfig:
    return apply_overrides(ExperimentConfig(name="tiny_two_stage"), TINY + [f"data.root={root}", *extra])


@pytest.fixture(scope="module")
def isic_no_test(tmp_path_factory) -> Path:
    """Training + Validation only, like the real copy; masks withheld (so a segmenter is needed)."""
    from skinkeras.data.synth import synthesize

    root = tmp_path_factory.mktemp("isic_no_test")
    synthesize("isic2017", root, n=64, seed=5, image_size=(40, 40), force=True,
               fractions={"train": 0.75, "val": 0.25}, masks=False)
    return root


def centre_crop(table, out_dir, *, image_size, margin):
    """Stand-in for skinkeras.segmentation.crop.crop_table: the central 70% of each image."""
    samples = table.samples.copy()
    paths = []
    for image_id, path in zip(samples["image_id"], samples["image_path"]):
        with Image.open(path) as image:
            w, h = image.size
            box = (int(0.15 * w), int(0.15 * h), int(0.85 * w), int(0.85 * h))
            target = Path(out_dir) / f"{image_id}_crop.png"  # a stem that is not the image id
            image.convert("RGB").crop(box).resize((image_size, image_size)).save(target)
        paths.append(str(target.resolve()))
    samples["image_path"] = paths
    stats = {"images": len(samples), "given_masks": 0, "predicted_masks": len(samples), "fallback_whole_image": 0}
    return dataclasses.replace(table, samples=samples), stats


def test_hold_out_test_is_stratified_seeded_and_leaves_validation_alone(isic_no_test):
    from skinkeras.data.registry import load_dataset
    from skinkeras.systems.two_stage.data import hold_out_test

    table = load_dataset("isic2017", isic_no_test)
    split, source = hold_out_test(table, 0.25, seed=1)
    again, _ = hold_out_test(table, 0.25, seed=1)
    other, _ = hold_out_test(table, 0.25, seed=2)
    assert "held out" in source
    samples = split.samples
    assert list(samples["split"]) == list(again.samples["split"])
    assert list(samples["split"]) != list(other.samples["split"])
    before = table.samples
    assert (samples["split"] == "val").sum() == (before["split"] == "val").sum()
    for label in table.class_names:
        train_rows = (before["split"] == "train") & (before["label"] == label)
        held = ((samples["split"] == "test") & (samples["label"] == label)).sum()
        assert held == round(train_rows.sum() * 0.25), label


def test_a_release_test_folder_is_the_test_set(tmp_path):
    from skinkeras.data.registry import load_dataset
    from skinkeras.data.synth import synthesize
    from skinkeras.systems.two_stage.data import hold_out_test

    synthesize("isic2017", tmp_path, n=30, seed=0, image_size=(32, 32), force=True)
    table = load_dataset("isic2017", tmp_path)
    split, source = hold_out_test(table, 0.2, seed=0)
    assert source == "the release's Test folder"
    assert list(split.samples["split"]) == list(table.samples["split"])


def test_variants_and_the_missing_segmenter_error(isic_no_test, tmp_path):
    from skinkeras.systems.two_stage.data import active_variants
    from skinkeras.systems.two_stage.train import train_two_stage

    assert active_variants(tiny_config(isic_no_test)) == ["segmented", "whole"]
    assert active_variants(tiny_config(isic_no_test, "two_stage.use_segmentation=false")) == ["whole"]
    with pytest.raises(ConfigError, match="two_stage.variants"):
        active_variants(tiny_config(isic_no_test, "two_stage.variants=cropped"))
    with pytest.raises(ConfigError, match="no variant left"):
        active_variants(tiny_config(isic_no_test, "two_stage.variants=segmented", "two_stage.use_segmentation=0"))
    # No masks in the data and no segmenter run: fails before any model is trained.
    with pytest.raises(SkinkerasError, match="skinkeras train unet_ham10000_masks"):
        train_two_stage(tiny_config(isic_no_test), tmp_path / "run", verbose=0)
    assert not (tmp_path / "run" / "models").exists()
    with pytest.raises(SkinkerasError, match="not a segmentation run"):
        train_two_stage(tiny_config(isic_no_test, f"two_stage.segmenter_run={tmp_path}"), tmp_path / "run2",
                        verbose=0)


# Four tiny models trained and predicted: ~2 min on an idle 2-core CPU (7 under load), so slow;
# the evaluation on stored predictions below is the default-run test of the report.
@pytest.mark.slow
def test_two_stage_end_to_end_with_resume_and_report(isic_no_test, tmp_path):
    from skinkeras.evaluation.ensembles import ENSEMBLES
    from skinkeras.runs import evaluate_run
    from skinkeras.systems.two_stage.report import COLUMNS
    from skinkeras.systems.two_stage.run_files import TwoStageRun
    from skinkeras.systems.two_stage.train import train_two_stage

    run = tmp_path / "run"
    summary = train_two_stage(tiny_config(isic_no_test), run, verbose=0, crop_function=centre_crop)
    assert summary["variants"] == ["segmented", "whole"]
    assert "held out" in summary["test_source"]
    assert summary["crops"]["images"] == 64
    assert set(summary["models"]) == {f"{v}/{b}" for v in ("segmented", "whole")
                                      for b in ("MobileNetV3Small", "MobileNetV2")}
    split = (run / "split.csv").read_text()
    assert split.count(",test") == summary["split_sizes"]["test"] > 0
    # Each model is a complete classification run with the paper's head: SE -> GAP -> Dense -> Dense(3).
    one = TwoStageRun(run).member("segmented", "MobileNetV2").path
    assert (one / "best.keras").exists() and (one / "run.json").exists()
    from skinkeras.engine.run_directory import load_run_model

    model = load_run_model(one)
    assert model.get_layer("hidden").units == 16 and model.output.shape[-1] == 3
    crops = json.loads((run / "crops" / "crops.json").read_text())["image_paths"]
    # The member trains on the crops, handed over as a table (image ids: the crops' file stems).
    member_split = (one / "split.csv").read_text()
    assert all(Path(path).stem in member_split for path in crops.values())
    ids, probs = (np.load(TwoStageRun(run).stored_predictions("whole", "MobileNetV3Small", "test"))[k]
                  for k in ("image_ids", "probs"))
    assert len(ids) == summary["split_sizes"]["test"] and probs.shape == (len(ids), 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    # Resume: every model is done, so nothing is retrained.
    stamps = {p: p.stat().st_mtime_ns for p in (run / "models").rglob("best.keras")}
    again = train_two_stage(None, run, resume=True, verbose=0, crop_function=None)  # crops reused
    assert again["models"] == summary["models"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    metrics, files = evaluate_run(run, isic_no_test, split="test", n_resamples=20)
    rows = metrics["table"]
    assert len(rows) == 2 * (2 + len(ENSEMBLES))
    assert {(r["variant"], r["model"]) for r in rows} >= {("segmented", "lc_head"), ("whole", "MobileNetV2")}
    for row in rows:
        assert set(row) == set(COLUMNS)
        assert 0.0 <= row["accuracy"] <= 1.0
    assert "\n" not in metrics["summary"] and "test images" in metrics["summary"]
    assert metrics["threshold"] == 0.5
    for name in ("metrics", "report", "table", "radar"):
        assert files[name].exists(), name
    report = files["report"].read_text()
    assert "| whole | *lc_head* |" in report and "threshold 0.5" in report
    assert (files["table"].read_text().count("\n")) == len(rows) + 1
    assert Image.open(files["radar"]).size[0] > 400
    assert TwoStageRun(run).ensemble_model("segmented").exists()


def fake_run(run: Path, *, n_val: int = 60, n_test: int = 45, seed: int = 0) -> Path:
    """A finished two-stage run without models: stored predictions (model 0 informative, model 1
    noise) and empty best.keras markers. The evaluation reads only these."""
    import pandas as pd

    from skinkeras.experiments.config import save_config
    from skinkeras.systems.two_stage.run_files import TwoStageRun

    rng = np.random.default_rng(seed)
    classes = ["melanoma", "seborrheic_keratosis", "nevus"]
    ids = {"val": [f"V{i:03d}" for i in range(n_val)], "test": [f"T{i:03d}" for i in range(n_test)]}
    y = {part: np.arange(len(ids[part])) % 3 for part in ids}
    rows = [(i, i, classes[label], part) for part in ids for i, label in zip(ids[part], y[part])]
    run.mkdir(parents=True)
    pd.DataFrame(rows, columns=["image_id", "lesion_id", "label", "split"]).to_csv(run / "split.csv", index=False)
    config = apply_overrides(ExperimentConfig(name="fake"), ["task=two_stage", "two_stage.lc_epochs=100",
                                                             "data.root=/nonexistent", "data.dataset=isic2017"])
    save_config(config, run / "config.json")
    backbones = ["A", "B"]
    (run / "preprocessing.json").write_text(json.dumps({
        "class_names": classes, "image_size": 32, "test_source": "a stratified 20% of Training held out (seed 0)",
        "variants": ["segmented", "whole"], "backbones": backbones}))
    for variant in ("segmented", "whole"):
        for backbone in backbones:
            member = TwoStageRun(run).member(variant, backbone).path
            member.mkdir(parents=True)
            (member / "best.keras").touch()
            for part in ids:
                if backbone == "A":
                    probs = np.full((len(ids[part]), 3), 0.15)
                    probs[np.arange(len(ids[part])), y[part]] = 0.7
                else:
                    probs = rng.dirichlet([1, 1, 1], size=len(ids[part]))
                path = TwoStageRun(run).stored_predictions(variant, backbone, part)
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez(path, image_ids=np.array(ids[part]), probs=probs)
    return run


def test_evaluation_table_report_and_radar_from_stored_predictions(tmp_path):
    import pandas as pd

    from skinkeras.evaluation.ensembles import ENSEMBLES
    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.runs import evaluate_run
    from skinkeras.systems.two_stage.report import COLUMNS

    run = fake_run(tmp_path / "run")
    metrics, files = evaluate_run(run, None, n_resamples=0)
    rows = {(r["variant"], r["model"]): r for r in metrics["table"]}
    assert len(rows) == 2 * (2 + len(ENSEMBLES))
    # Model A is right on every image with probability 0.7 on the true class.
    a = rows[("segmented", "A")]
    assert a["accuracy"] == 1.0 and a["macro_auc"] == 1.0 and a["balanced_accuracy"] == 1.0
    # Melanoma vs rest at threshold 0.5: A's melanoma probability is 0.7 exactly on the melanomas.
    assert (a["mel_sensitivity"], a["mel_specificity"], a["mel_precision"], a["mel_f1"]) == (1.0, 1.0, 1.0, 1.0)
    b = rows[("whole", "B")]
    assert b["accuracy"] < 0.7  # noise
    assert rows[("whole", "lc_head")]["accuracy"] > 0.9  # the LC head learns to follow A
    table = pd.read_csv(files["table"])
    assert list(table.columns) == list(COLUMNS) and len(table) == len(rows)
    report = files["report"].read_text()
    assert "| segmented | A | 1.000 | 1.000 | 1.000 |" in report
    assert "held out" in metrics["summary"] and "\n" not in metrics["summary"]
    stored = json.loads(files["metrics"].read_text())
    assert stored["summary"] == metrics["summary"] and len(stored["table"]) == len(rows)
    assert files["radar"].stat().st_size > 10_000
    # The predictions file holds every model's rows; the table is computed from it.
    predictions = Predictions.read(files["predictions"])
    assert predictions.models == [f"{r['variant']}/{r['model']}" for r in metrics["table"]]
    assert len(predictions) == len(rows) * 45
    with pytest.raises(SkinkerasError, match="--data-root"):
        evaluate_run(run, None, split="all")
    (run / "models" / "whole" / "B" / "best.keras").unlink()
    (run / "predictions" / "whole" / "B_test.npz").unlink()
    with pytest.raises(SkinkerasError, match="--resume"):
        evaluate_run(run, None, n_resamples=0)
