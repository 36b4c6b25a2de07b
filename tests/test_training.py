"""The training engine on a tiny model and generated data: run directory, resume, NaN, distribution.

Each test trains the registry's TinyCNN + soft attention at 64 px (the backbone is not what is tested here) on a few dozen generated images, so the
whole file stays well under a minute or two on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from skinkeras.experiments import ExperimentConfig, apply_overrides

TINY = [
    "data.dataset=ham10000",
    "data.image_size=64",
    "data.batch_size=8",
    "model.backbone=TinyCNN",
    "model.head=soft_attention",
    "model.metadata_branch=gessert",
    "train.epochs=2",
    "train.early_stopping_patience=0",
    "model.weights=",
]


@pytest.fixture(scope="module")
def tiny_ham(tmp_path_factory) -> Path:
    from skinkeras.data.synth import synthesize

    root = tmp_path_factory.mktemp("tiny_ham")
    synthesize("ham10000", root, n=90, seed=3, image_size=(48, 36), force=True)
    return root


def tiny_config(root: Path, *extra: str) -> ExperimentConfig:
    return apply_overrides(ExperimentConfig(name="tiny"), TINY + [f"data.root={root}", *extra])


def run_cli(args, env_extra=None, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-m", "skinkeras", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_train_writes_a_complete_run_directory(tiny_ham, tmp_path):
    from skinkeras.engine.run_directory import load_run_model
    from skinkeras.runs import evaluate_run
    from skinkeras.systems.classification.train import train

    run = tmp_path / "run"
    summary = train(tiny_config(tiny_ham), run, verbose=0)
    assert summary["epochs_done"] == 2
    for name in ("config.json", "split.csv", "preprocessing.json", "best.keras", "history.csv",
                 "run.json", "checkpoints/last.keras", "checkpoints/state.json"):
        assert (run / name).exists(), name
    assert list((run / "logs").rglob("*tfevents*")), "no TensorBoard events"
    split = (run / "split.csv").read_text().splitlines()
    rows = [line.split(",") for line in split[1:]]
    lesion_parts = {}
    for image_id, lesion_id, label, part in rows:
        lesion_parts.setdefault(lesion_id, set()).add(part)
    assert all(len(parts) == 1 for parts in lesion_parts.values()), "a lesion crosses splits"
    preprocessing = json.loads((run / "preprocessing.json").read_text())
    assert preprocessing["class_names"] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert len(preprocessing["metadata_features"]) == 20

    model = load_run_model(run)
    assert set(model.input) == {"image", "metadata"} if isinstance(model.input, dict) else True
    # BatchNorm statistics must follow the weights when training from scratch (momentum 0.9, not
    # MobileNetV3's 0.999): otherwise inference outputs are the same for every image.
    from skinkeras.engine.run_data import evaluation_table
    from skinkeras.systems.classification.evaluate import predict_table

    _, probs, _ = predict_table(model, evaluation_table(run, tiny_ham, None, "val"), preprocessing)
    assert probs.std(axis=0).max() > 1e-3, "the model predicts the same probabilities for every image"
    bn_momenta = {layer.momentum for layer in model._flatten_layers() if "BatchNormalization" in type(layer).__name__}
    assert bn_momenta == {0.9}

    metrics, files = evaluate_run(run, tiny_ham, split="test", n_resamples=200)
    n_test = sum(1 for r in rows if r[3] == "test")
    assert metrics["n"] == n_test
    assert 0.0 <= metrics["balanced_accuracy"] <= 1.0
    assert files["metrics"].exists() and files["report"].exists()

    with pytest.raises(Exception, match="already holds a run"):
        train(tiny_config(tiny_ham), run, verbose=0)


def test_nan_loss_stops_with_a_clear_message():
    import keras

    from skinkeras.engine.callbacks import NonFiniteLossError, StopOnNonFiniteLoss

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    x = np.ones((8, 3), np.float32)
    x[5, 1] = np.nan
    y = np.eye(2, dtype=np.float32)[[0, 1] * 4]
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[StopOnNonFiniteLoss()])


def _final_weights(run: Path):
    from skinkeras.saving import load_model

    return load_model(run / "checkpoints" / "last.keras").get_weights()


@pytest.mark.slow  # 80 s; resume is also covered fast by test_resume_faults, test_crossval and test_eis_grid
def test_killed_run_resumes_and_ends_where_an_uninterrupted_run_would(tiny_ham, tmp_path):
    epochs = 4
    common = ["train", "ham10000_soft_attention", "--data-root", str(tiny_ham)]
    common += [arg for o in TINY + [f"train.epochs={epochs}"] for arg in ("--set", o)]

    straight = run_cli(common + ["--out", str(tmp_path / "straight")])
    out, _ = straight.communicate(timeout=600)
    assert straight.returncode == 0, out

    killed_dir = tmp_path / "killed"
    victim = run_cli(common + ["--out", str(killed_dir)])
    state_path = killed_dir / "checkpoints" / "state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if state_path.exists() and json.loads(state_path.read_text())["epochs_done"] >= 2:
            break
        assert victim.poll() is None, victim.communicate()[0]
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    done_when_killed = json.loads(state_path.read_text())["epochs_done"]
    assert 2 <= done_when_killed < epochs, "the run finished before it could be killed"

    resumed = run_cli(["train", "ham10000_soft_attention", "--out", str(killed_dir), "--resume"])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert f"resuming after epoch {done_when_killed}" in out

    a = json.loads((tmp_path / "straight" / "checkpoints" / "state.json").read_text())
    b = json.loads(state_path.read_text())
    assert a["epochs_done"] == b["epochs_done"] == epochs
    for ea, eb in zip(a["checkpoint"]["history"], b["checkpoint"]["history"]):
        assert ea["epoch"] == eb["epoch"]
        assert ea["loss"] == pytest.approx(eb["loss"], rel=1e-4, abs=1e-5)
        assert ea["val_loss"] == pytest.approx(eb["val_loss"], rel=1e-4, abs=1e-5)
    assert a["callbacks"] == b["callbacks"] or a["callbacks"]["schedule"] == b["callbacks"]["schedule"]
    for wa, wb in zip(_final_weights(tmp_path / "straight"), _final_weights(killed_dir)):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # 45-55 s of CPU; tests/test_multiworker.py has a fast one (a toy model)
def test_mirrored_strategy_over_two_logical_cpus(tiny_ham, tmp_path):
    script = textwrap.dedent(f"""
        import json, sys, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from skinkeras.experiments import ExperimentConfig, apply_overrides
        from skinkeras.systems.classification.train import train
        overrides = {TINY!r} + ["data.root={tiny_ham}", "train.strategy=mirrored", "train.epochs=1"]
        summary = train(apply_overrides(ExperimentConfig(name="tiny"), overrides), "{tmp_path / 'run'}", verbose=0)
        print("SUMMARY", json.dumps(summary))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.split("SUMMARY", 1)[1])
    assert summary["replicas"] == 2
    assert summary["epochs_done"] == 1
    history = json.loads((tmp_path / "run" / "checkpoints" / "state.json").read_text())["checkpoint"]["history"]
    assert np.isfinite(history[0]["loss"])


def test_mixed_float16_training_scales_the_loss(tmp_path):
    """Our models keep a float32 policy with mixed_float16 layers (the policy is plumbed, not
    global), so Keras' compile adds no loss scaling by itself: `objectives.optimizer` does. A loss
    of 1e-8 * output has float16 gradients below float16's smallest number (6e-8): without the
    scaling they are 0 and nothing learns."""
    import keras

    from skinkeras.experiments.sections import TrainConfig
    from skinkeras.saving import load_model
    from skinkeras.training.objectives import optimizer

    def trained(precision):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,))
        outputs = keras.layers.Dense(1, dtype="mixed_float16", name="dense")(inputs)
        model = keras.Model(inputs, outputs)
        # Plain SGD with a huge rate turns the true gradient (8e-8 per kernel weight) into a visible step.
        sgd = TrainConfig(optimizer="sgd", learning_rate=1e5, momentum=0.0)
        model.compile(optimizer(sgd, precision), loss=lambda y, p: 1e-8 * keras.ops.sum(p))
        before = model.get_layer("dense").kernel.numpy().copy()
        model.fit(np.ones((8, 4), np.float32), np.zeros((8, 1), np.float32), epochs=1, batch_size=8, verbose=0)
        return model, before

    model, before = trained("float32")  # what compile alone gives these models
    assert type(model.optimizer).__name__ == "SGD"
    np.testing.assert_array_equal(model.get_layer("dense").kernel.numpy(), before)

    model, before = trained("mixed_float16")
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    np.testing.assert_allclose(model.get_layer("dense").kernel.numpy(), before - 1e5 * 8e-8, rtol=1e-3)
    model.optimizer.learning_rate = 0.01  # the plateau schedule sets it through the wrapper
    assert float(model.optimizer.inner_optimizer.learning_rate.numpy()) == pytest.approx(0.01)
    model.compile(model.optimizer, loss="mse")  # savable (the lambda is not)
    model.save(tmp_path / "m.keras")  # a resumed run keeps its loss scaling
    assert type(load_model(tmp_path / "m.keras").optimizer).__name__ == "LossScaleOptimizer"


def test_paper_003_weighting_trains_ohem_es_sgd_milestones(tiny_ham, tmp_path):
    """OHEM + ES + SGD (Nesterov) + the milestone schedule through the classification trainer: the
    selection's epoch callback reaches the fit, and the checkpoint keeps the wrapper loss."""
    from skinkeras.engine.run_directory import RunDirectory
    from skinkeras.saving import load_model
    from skinkeras.systems.classification.train import train
    from skinkeras.training.selection import SelectedLoss

    run = tmp_path / "run"
    config = tiny_config(tiny_ham, "train.sample_selection=ohem", "train.class_weights=effective_number",
                         "train.optimizer=sgd", "train.learning_rate=0.01", "train.lr_schedule=milestones",
                         "model.head=gap", "model.metadata_branch=none")
    summary = train(config, run, verbose=0)
    assert summary["epochs_done"] == 2
    loss = load_model(RunDirectory(run).last_model).loss
    assert isinstance(loss, SelectedLoss) and loss.mode == "ohem" and loss.epochs == 2
    assert loss.class_weights is not None and len(loss.class_weights) == 7
