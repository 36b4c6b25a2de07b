"""Paper 003's weighting: SPL / OHEM selection (`SelectedLoss`), its epoch callback, the
milestone learning-rate schedule and the config wiring (CB / ES, selection)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from skinkeras.errors import SkinkerasError
from skinkeras.experiments.sections import TrainConfig
from skinkeras.training.losses import WeightedCategoricalCrossentropy, build_loss
from skinkeras.training.selection import (
    SelectedLoss,
    SelectionSchedule,
    auto_alpha,
    selected_count,
    selected_losses,
)

# Per-sample cross-entropies of a batch of M = 20, all different, in a shuffled order.
KNOWN_LOSSES = np.random.default_rng(0).permutation(np.linspace(0.05, 3.0, 20)).astype("float32")


def _batch_with_losses(losses, num_classes=3):
    """(y, p) whose per-sample cross-entropy is `losses`: p(true class) = exp(-loss)."""
    labels = np.arange(len(losses)) % num_classes
    y = np.eye(num_classes, dtype="float32")[labels]
    true_p = np.exp(-np.asarray(losses, dtype="float64"))
    p = np.where(y > 0, true_p[:, None], ((1 - true_p) / (num_classes - 1))[:, None])
    return y, p.astype("float32")


def _weights(loss, y, p, losses):
    """The 0/1 weight each sample got (average="batch": the call returns w_i * loss_i)."""
    return np.round(keras.ops.convert_to_numpy(loss.call(y, p)) / losses, 4)


def test_m_follows_eq_9_and_reaches_the_whole_batch_at_half_training():
    alpha = auto_alpha(20, 150)
    assert alpha == pytest.approx(2 * math.log(39) / 150)
    counts = [selected_count(20, e, 150) for e in range(150)]
    assert counts[0] == 10 and counts[74] == 19 and all(m == 20 for m in counts[75:])
    assert counts == sorted(counts)
    assert counts[14] == round(20 / (1 + math.exp(-alpha * 14)))
    # The smallest such alpha: a slightly smaller one leaves a sample out at e = 75.
    assert selected_count(20, 75, 150, alpha=alpha * 0.999) == 19
    assert selected_count(21, 0, 150) == 11  # odd M: half rounded up
    for batch in (1, 2, 7, 20, 32, 101):
        for epochs in (1, 2, 9, 150, 250):
            assert selected_count(batch, -(-epochs // 2), epochs) == batch, (batch, epochs)


@pytest.mark.parametrize("mode", ["spl", "ohem"])
@pytest.mark.parametrize("epoch", [0, 14, 38, 74, 75, 149])
def test_known_losses_get_the_expected_0_1_weights(mode, epoch):
    y, p = _batch_with_losses(KNOWN_LOSSES)
    loss = SelectedLoss(build_loss("cce"), mode=mode, epochs=150, average="batch")
    loss.set_epoch(epoch)
    weights = _weights(loss, y, p, KNOWN_LOSSES)
    m = selected_count(20, epoch, 150)
    order = np.argsort(KNOWN_LOSSES)
    chosen = order[:m] if mode == "spl" else order[::-1][:m]
    expected = np.zeros(20)
    expected[chosen] = 1.0
    np.testing.assert_array_equal(weights, expected)
    # average="selected" (default): the mean over the chosen samples.
    mean = SelectedLoss(build_loss("cce"), mode=mode, epochs=150)
    mean.set_epoch(epoch)
    assert float(mean(y, p)) == pytest.approx(float(KNOWN_LOSSES[chosen].mean()), rel=1e-5)


def test_epoch_variable_changes_selection_without_retracing_and_off_scores_all():
    y, p = _batch_with_losses(KNOWN_LOSSES)
    loss = SelectedLoss(build_loss("cce"), mode="ohem", epochs=150)
    traces = []

    @tf.function
    def compiled(y, p):
        traces.append(1)
        return loss(y, p)

    values = {}
    for epoch in (0, 30, 80):
        loss.set_epoch(epoch)
        values[epoch] = float(compiled(y, p))
    assert len(traces) == 1
    top = np.sort(KNOWN_LOSSES)[::-1]
    assert values[0] == pytest.approx(top[:10].mean(), rel=1e-5)
    assert values[30] == pytest.approx(top[:selected_count(20, 30, 150)].mean(), rel=1e-5)
    assert values[80] == pytest.approx(KNOWN_LOSSES.mean(), rel=1e-5)
    loss.set_epoch(0)
    loss.set_selecting(False)
    assert float(compiled(y, p)) == pytest.approx(KNOWN_LOSSES.mean(), rel=1e-5)
    assert len(traces) == 1


def test_class_weights_multiply_after_ranking_by_the_plain_loss():
    y, p = _batch_with_losses(KNOWN_LOSSES)
    class_weights = [1.0, 10.0, 0.1]
    loss = SelectedLoss(build_loss("cce"), mode="ohem", epochs=150, class_weights=class_weights,
                        average="batch")
    chosen = np.argsort(KNOWN_LOSSES)[::-1][:10]  # by the unweighted loss
    expected = np.zeros(20)
    expected[chosen] = KNOWN_LOSSES[chosen] * (y[chosen] @ np.array(class_weights))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss.call(y, p)), expected, rtol=1e-5)


def test_focal_gamma_zero_is_cel_inside_the_wrapper_and_float16_ranks_in_float32():
    y, p = _batch_with_losses(KNOWN_LOSSES)
    cel = SelectedLoss(build_loss("cce"), mode="spl", epochs=10)
    focal0 = SelectedLoss(build_loss("focal", focal_gamma=0.0), mode="spl", epochs=10)
    assert float(focal0(y, p)) == float(cel(y, p))
    assert float(build_loss("focal", focal_gamma=0.0)(y, p)) == float(build_loss("cce")(y, p))
    value = cel(y, p.astype("float16"))
    assert value.dtype == "float32"
    assert float(value) == pytest.approx(float(np.sort(KNOWN_LOSSES)[:10].mean()), rel=2e-3)
    with _policy("mixed_float16"):
        mixed = SelectedLoss(build_loss("cce"), mode="spl", epochs=10)
        assert keras.ops.convert_to_numpy(mixed.call(y, p.astype("float16"))).dtype == np.float32


class _policy:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.old = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.name)

    def __exit__(self, *exc):
        keras.config.set_dtype_policy(self.old)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_selected_loss_serialises_and_a_model_with_it_loads_from_keras_file(tmp_path):
    loss = SelectedLoss(build_loss("focal", focal_gamma=1.0), mode="ohem", epochs=40, alpha=0.3,
                        class_weights=np.array([1.0, 2.0, 3.0]), average="batch")
    config = loss.get_config()
    restored = SelectedLoss.from_config(config)
    assert restored.get_config() == config
    assert isinstance(restored.base_loss, WeightedCategoricalCrossentropy) and restored.base_loss.gamma == 1.0
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, SelectedLoss) and again.get_config() == config
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    model.compile("adam", loss)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert selected_losses(loaded) and loaded.loss.get_config() == config
    y, p = _batch_with_losses(KNOWN_LOSSES)
    assert float(loaded.loss(y, p)) == pytest.approx(float(loss(y, p)))


def test_bad_selection_arguments_say_what_was_received():
    with pytest.raises(ValueError, match="mode=.hard."):
        SelectedLoss(build_loss("cce"), mode="hard")
    with pytest.raises(ValueError, match="alpha=-1"):
        SelectedLoss(build_loss("cce"), alpha=-1)
    with pytest.raises(ValueError, match="epochs=0"):
        SelectedLoss(build_loss("cce"), epochs=0)
    with pytest.raises(ValueError, match="average=.sum."):
        SelectedLoss(build_loss("cce"), average="sum")


def test_spl_trains_under_fit_and_the_callback_advances_m():
    # A fixed model (identity kernel, learning rate 0): only the selection changes the loss.
    y, p = _batch_with_losses(KNOWN_LOSSES)
    logits = np.log(p)
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(3, use_bias=False, kernel_initializer="identity")(inputs)
    model = keras.Model(inputs, keras.layers.Softmax()(outputs))
    # alpha = 3: m = 10 at epoch 0, 19 at epoch 1 (20 * sigmoid(3) = 19.05).
    model.compile(keras.optimizers.SGD(0.0), SelectedLoss(build_loss("cce"), mode="spl", epochs=2, alpha=3.0))
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((int(self.model.loss.epoch.numpy()), int(self.model.loss.selecting.numpy())))

    history = model.fit(logits, y, batch_size=20, epochs=2, shuffle=False, verbose=0,
                        validation_data=(logits, y), callbacks=[SelectionSchedule(), Record()])
    assert seen == [(0, 1), (1, 1)]
    low = np.sort(KNOWN_LOSSES)
    assert history.history["loss"][0] == pytest.approx(low[:10].mean(), rel=1e-4)
    assert history.history["loss"][1] == pytest.approx(low[:19].mean(), rel=1e-4)
    # Validation scores every sample.
    assert history.history["val_loss"][0] == pytest.approx(KNOWN_LOSSES.mean(), rel=1e-4)
    assert int(model.loss.selecting.numpy()) == 0  # off after training
    # A real step: the weights move with SPL too.
    model.optimizer.learning_rate = 0.1
    before = model.get_weights()[0].copy()
    model.fit(logits, y, batch_size=20, epochs=1, verbose=0, callbacks=[SelectionSchedule()])
    assert not np.allclose(before, model.get_weights()[0])


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras
    from skinkeras.training.losses import build_loss
    from skinkeras.training.selection import SelectedLoss, SelectionSchedule

    logits = np.array(json.loads(__import__("sys").argv[1]), dtype="float32")
    y = np.eye(3, dtype="float32")[np.zeros(len(logits), dtype=int)]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        inputs = keras.Input((3,))
        outputs = keras.layers.Dense(3, use_bias=False, kernel_initializer="identity")(inputs)
        model = keras.Model(inputs, keras.layers.Softmax()(outputs))
        model.compile(keras.optimizers.SGD(0.0), SelectedLoss(build_loss("cce"), mode="ohem", epochs=10))
    history = model.fit(logits, y, batch_size=len(logits), epochs=1, shuffle=False, verbose=0,
                        callbacks=[SelectionSchedule()])
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "loss": history.history["loss"][0]}))
    """
)


def test_selection_is_per_replica_under_mirrored_strategy():
    # 16 samples, 8 per replica; the 8 hardest are all in the first half, so a global OHEM and a
    # per-replica one (4 hardest of each half, m from the per-replica M = 8) differ.
    rng = np.random.default_rng(3)
    true_logit = np.concatenate([rng.uniform(-3, -1, 8), rng.uniform(1, 3, 8)])
    logits = np.stack([true_logit, np.zeros(16), np.zeros(16)], axis=1).astype("float32")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT, json.dumps(logits.tolist())],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    losses = -(logits[:, 0] - np.log(np.exp(logits).sum(axis=1)))
    per_replica = np.mean([np.sort(half)[::-1][:4].mean() for half in (losses[:8], losses[8:])])
    global_selection = np.sort(losses)[::-1][:8].mean()
    assert result["loss"] == pytest.approx(per_replica, rel=1e-5)
    assert abs(per_replica - global_selection) > 0.1


def test_milestone_schedule_divides_by_ten_at_half_and_three_quarters():
    from skinkeras.engine.callbacks import MilestoneSchedule

    schedule = MilestoneSchedule(1e-4, epochs=150)
    rates = [schedule.learning_rate(e) for e in range(150)]
    assert rates[74] == 1e-4 and rates[75] == pytest.approx(1e-5) and rates[112] == pytest.approx(1e-5)
    assert rates[113] == pytest.approx(1e-6) and rates[149] == pytest.approx(1e-6)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(keras.optimizers.SGD(1e-4), "mse")
    schedule.set_model(model)
    schedule.on_epoch_begin(120)  # a resumed run: the rate is a function of the epoch alone
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-6)


def test_milestones_option_and_bad_milestones(tmp_path):
    from skinkeras.engine.callbacks import MilestoneSchedule
    from skinkeras.engine.fit import run_callbacks
    from skinkeras.engine.run_directory import RunDirectory

    config = TrainConfig(epochs=8, lr_schedule="milestones", learning_rate=0.1, early_stopping_patience=0)
    stateful, _, _ = run_callbacks(config, RunDirectory(tmp_path / "run"), None, monitor="val_loss",
                                   tensorboard=False)
    schedule = stateful["schedule"]
    assert isinstance(schedule, MilestoneSchedule)
    assert [schedule.learning_rate(e) for e in range(8)] == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    bad = TrainConfig(lr_schedule="milestones", lr_milestones=(0.75, 0.5))
    with pytest.raises(SkinkerasError, match=r"lr_milestones=\(0.75, 0.5\)"):
        run_callbacks(bad, RunDirectory(tmp_path / "bad"), None, monitor="val_loss", tensorboard=False)


def test_config_builds_cb_es_and_selection_and_sgd_is_nesterov():
    from skinkeras.training.objectives import classification_loss, optimizer, selection_callbacks

    counts = [6741, 1119, 116, 331, 1101, 517, 143]  # paper 003, Table 1
    n = sum(counts)
    cb = classification_loss(TrainConfig(class_weights="original"), counts)
    np.testing.assert_allclose(cb.class_weights, [n / c for c in counts])
    es = classification_loss(TrainConfig(class_weights="effective_number"), counts)
    beta = (n - 1) / n
    raw = np.array([(1 - beta) / (1 - beta**c) for c in counts])
    np.testing.assert_allclose(es.class_weights, raw / raw.sum() * 7, rtol=1e-9)
    es99 = classification_loss(TrainConfig(class_weights="effective_number", class_weight_beta=0.99), counts)
    raw99 = np.array([(1 - 0.99) / (1 - 0.99**c) for c in counts])
    np.testing.assert_allclose(es99.class_weights, raw99 / raw99.sum() * 7, rtol=1e-9)
    ohem = classification_loss(TrainConfig(loss="focal", focal_gamma=1.0, class_weights="effective_number",
                                           sample_selection="ohem", selection_alpha=0.2, epochs=150), counts)
    assert isinstance(ohem, SelectedLoss) and ohem.mode == "ohem" and ohem.alpha == 0.2 and ohem.epochs == 150
    assert ohem.base_loss.gamma == 1.0 and ohem.base_loss.class_weights is None
    np.testing.assert_allclose(ohem.class_weights, es.class_weights)
    spl = classification_loss(TrainConfig(class_weights="none", sample_selection="spl"), counts)
    assert spl.class_weights is None
    assert [type(c) for c in selection_callbacks(TrainConfig(sample_selection="spl"))] == [SelectionSchedule]
    assert selection_callbacks(TrainConfig()) == []
    for bad, match in ((dict(sample_selection="hard"), "sample_selection"),
                       (dict(selection_alpha=-1.0), "selection_alpha"),
                       (dict(class_weight_beta=1.0), "class_weight_beta"),
                       (dict(class_weights="inverse"), "class_weights")):
        with pytest.raises(SkinkerasError, match=match):
            classification_loss(TrainConfig(**bad), counts)
    sgd = optimizer(TrainConfig(optimizer="sgd", learning_rate=1e-4))
    assert sgd.nesterov is True and sgd.momentum == 0.9


def test_bench_selection_reports_three_losses():
    from skinkeras.bench.selection import measure
    from skinkeras.cli.bench import bench_modules

    assert "selection" in bench_modules()
    result = measure("TinyCNN", "gap", 32, 4, steps=2, warmup=1)
    assert set(result["ms_per_step"]) == {"cel", "spl", "ohem"}
    assert result["ratio_to_cel"]["cel"] == 1.0 and all(v > 0 for v in result["ms_per_step"].values())
