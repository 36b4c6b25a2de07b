"""Class weights (papers 001, 003) and the weighted cross-entropy / focal loss."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from skinkeras.training.class_weights import (
    class_counts,
    class_weight_dict,
    class_weights,
    effective_number_weights,
    sample_weights,
)
from skinkeras.training.losses import WeightedCategoricalCrossentropy, build_loss

HAM10000_COUNTS = {"akiec": 327, "bcc": 514, "bkl": 1099, "df": 115, "mel": 1113, "nv": 6705,
                   "vasc": 142}
# Paper 001 / REFERENCES.md, truncated to two decimals.
PAPER_BALANCED = {"akiec": 4.37, "bcc": 2.78, "bkl": 1.30, "df": 12.44, "mel": 1.28, "nv": 0.21,
                  "vasc": 10.07}


def test_balanced_weights_on_ham10000_counts():
    weights = class_weights(HAM10000_COUNTS, "balanced")
    for weight, (name, expected) in zip(weights, PAPER_BALANCED.items()):
        assert np.floor(weight * 100) / 100 == pytest.approx(expected), name
        assert weight == pytest.approx(10015 / (7 * HAM10000_COUNTS[name]))
    # "balanced" weights make every class carry the same total weight N / C.
    counts = np.array(list(HAM10000_COUNTS.values()))
    np.testing.assert_allclose(weights * counts, 10015 / 7)


def test_original_effective_number_and_none():
    counts = np.array(list(HAM10000_COUNTS.values()), dtype=float)
    np.testing.assert_allclose(class_weights(counts, "original"), 10015 / counts)
    effective = class_weights(counts, "effective_number")
    beta = (10015 - 1) / 10015
    raw = (1 - beta) / (1 - beta**counts)
    np.testing.assert_allclose(effective, raw / raw.sum() * 7)
    assert effective.sum() == pytest.approx(7)
    assert np.all(np.diff(effective[np.argsort(counts)]) < 0)  # rarer class, larger weight
    np.testing.assert_allclose(class_weights(counts, "none"), 1.0)
    np.testing.assert_allclose(
        class_weights([10, 30], "effective_number", beta=0.9),
        np.array([1 / (1 - 0.9**10), 1 / (1 - 0.9**30)]) / (1 / (1 - 0.9**10) + 1 / (1 - 0.9**30)) * 2,
    )


def test_cb_and_es_are_paper_003_equations_7_and_8():
    counts = np.array([6741, 1119, 116, 331, 1101, 517, 143], dtype=float)  # paper 003, Table 1
    n = counts.sum()
    np.testing.assert_allclose(class_weights(counts, "original"), n / counts)  # CB, eq. 7
    beta = (n - 1) / n  # the default
    eq8 = (1 - beta) / (1 - beta**counts)
    np.testing.assert_allclose(effective_number_weights(counts, normalise=False), eq8, rtol=1e-12)
    for default in (None, 0.0, -1.0):
        np.testing.assert_allclose(class_weights(counts, "effective_number", beta=default), eq8 / eq8.sum() * 7)
    eq8_99 = (1 - 0.99) / (1 - 0.99**counts)
    np.testing.assert_allclose(effective_number_weights(counts, 0.99, normalise=False), eq8_99)
    np.testing.assert_allclose(class_weights(counts, "effective_number", beta=0.99), eq8_99 / eq8_99.sum() * 7)
    with pytest.raises(ValueError, match="beta=1.5"):
        class_weights(counts, "effective_number", beta=1.5)


def test_empty_class_gets_zero_and_bad_input_is_named():
    weights = class_weights([10, 0, 30], "balanced")
    assert weights[1] == 0 and np.all(np.isfinite(weights))
    assert class_weights([10, 0, 30], "effective_number").sum() == pytest.approx(2)
    with pytest.raises(ValueError, match="mode=.foo."):
        class_weights([1, 2], "foo")
    with pytest.raises(ValueError, match=r"\[-1"):
        class_weights([-1, 2])
    with pytest.raises(ValueError, match=r"indices in \[0, 3\)"):
        class_counts([0, 3], 3)


def test_counts_dict_and_sample_weights():
    labels = np.array([0, 2, 2, 1, 2])
    np.testing.assert_array_equal(class_counts(labels, 3), [1, 1, 3])
    np.testing.assert_array_equal(class_counts(np.eye(3)[labels], 3), [1, 1, 3])
    weights = class_weights(class_counts(labels, 3))
    assert class_weight_dict(weights) == {0: weights[0], 1: weights[1], 2: weights[2]}
    np.testing.assert_allclose(sample_weights(labels, weights), weights[labels])
    np.testing.assert_allclose(sample_weights(np.eye(3)[labels], weights), weights[labels])


def _fixed_predictions(n=24, num_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, num_classes)).astype("float32")
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, num_classes, n)
    return labels, np.eye(num_classes, dtype="float32")[labels], logits, prob.astype("float32")


def _numpy_loss(y, prob, weights=None, gamma=0.0, smoothing=0.0):
    targets = y * (1 - smoothing) + smoothing / y.shape[1]
    prob = np.clip(prob, 1e-7, 1 - 1e-7)
    per_sample = -(targets * (1 - prob) ** gamma * np.log(prob)).sum(axis=1)
    if weights is not None:
        per_sample = per_sample * (y @ np.asarray(weights))
    return per_sample.mean()


@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_matches_numpy(gamma, smoothing):
    labels, y, logits, prob = _fixed_predictions()
    weights = [0.5, 2.0, 1.0, 4.0]
    loss = WeightedCategoricalCrossentropy(weights, gamma=gamma, label_smoothing=smoothing)
    expected = _numpy_loss(y, prob, weights, gamma, smoothing)
    assert float(loss(y, prob)) == pytest.approx(expected, rel=1e-5)
    from_logits = WeightedCategoricalCrossentropy(
        weights, gamma=gamma, label_smoothing=smoothing, from_logits=True
    )
    assert float(from_logits(y, logits)) == pytest.approx(expected, rel=1e-5)


def test_gamma_zero_is_cross_entropy_and_focal_matches_keras():
    _, y, logits, prob = _fixed_predictions(seed=1)
    cce = float(keras.losses.CategoricalCrossentropy()(y, prob))
    assert float(build_loss("cce")(y, prob)) == pytest.approx(cce, rel=1e-6)
    assert float(build_loss("focal", focal_gamma=0.0)(y, prob)) == pytest.approx(cce, rel=1e-6)
    # Keras' own focal loss with gamma 0 and alpha 1 is cross-entropy too.
    keras_focal0 = keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=0.0)
    assert float(keras_focal0(y, prob)) == pytest.approx(cce, rel=1e-6)
    for gamma in (1.0, 2.0, 5.0):
        keras_focal = keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=gamma)
        ours = build_loss("focal", focal_gamma=gamma)
        assert float(ours(y, prob)) == pytest.approx(float(keras_focal(y, prob)), rel=1e-5)
        assert float(ours(y, prob)) < cce  # the focal term only shrinks each sample's loss
    with pytest.raises(ValueError, match="Unknown loss 'hinge'"):
        build_loss("hinge")


def test_loss_matches_keras_class_weight_in_fit():
    labels, y, logits, _ = _fixed_predictions(n=32, num_classes=4, seed=2)
    weights = class_weights(class_counts(labels, 4))

    def fixed_model():
        # Identity kernel and a zero learning rate: the model outputs softmax(logits), unchanged.
        inputs = keras.Input((4,))
        outputs = keras.layers.Dense(4, use_bias=False, kernel_initializer="identity")(inputs)
        return keras.Model(inputs, keras.layers.Softmax()(outputs))

    keras_weighted = fixed_model()
    keras_weighted.compile(keras.optimizers.SGD(0.0), keras.losses.CategoricalCrossentropy())
    history_keras = keras_weighted.fit(
        logits, y, batch_size=32, epochs=1, class_weight=class_weight_dict(weights),
        shuffle=False, verbose=0,
    )
    ours = fixed_model()
    ours.compile(keras.optimizers.SGD(0.0), build_loss("cce", class_weights=weights))
    history_ours = ours.fit(logits, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    expected = _numpy_loss(y, keras.ops.convert_to_numpy(keras.ops.softmax(logits)), weights)
    assert history_ours.history["loss"][0] == pytest.approx(history_keras.history["loss"][0], rel=1e-5)
    assert history_ours.history["loss"][0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # never trained
def test_loss_serialises_and_loads_without_custom_objects(tmp_path):
    loss = build_loss("focal", class_weights=np.array([1.0, 2.0, 3.0]), focal_gamma=1.5,
                      label_smoothing=0.05)
    config = loss.get_config()
    assert config["class_weights"] == [1.0, 2.0, 3.0]
    assert config["gamma"] == 1.5 and config["label_smoothing"] == 0.05
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, WeightedCategoricalCrossentropy)
    assert restored.get_config() == config
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    model.compile("adam", loss)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    y, p = np.eye(3, dtype="float32"), np.full((3, 3), 1 / 3, dtype="float32")
    assert float(loaded.loss(y, p)) == pytest.approx(float(loss(y, p)))


def test_bad_loss_arguments_say_what_was_received():
    with pytest.raises(ValueError, match="gamma=-1"):
        WeightedCategoricalCrossentropy(gamma=-1)
    with pytest.raises(ValueError, match="class_weights="):
        WeightedCategoricalCrossentropy(class_weights=[1.0, -2.0])
    with pytest.raises(ValueError, match="predicts 3 classes"):
        WeightedCategoricalCrossentropy(class_weights=[1.0, 2.0])(np.eye(3), np.eye(3))


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras
    from skinkeras.training.losses import build_loss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(16, 3)).astype("float32")
    labels = np.array([0] * 12 + [1, 2, 1, 2])  # the rare classes all in the second half
    y = np.eye(3, dtype="float32")[labels]
    weights = [0.5, 4.0, 2.0]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        inputs = keras.Input((3,))
        outputs = keras.layers.Dense(3, use_bias=False, kernel_initializer="identity")(inputs)
        model = keras.Model(inputs, keras.layers.Softmax()(outputs))
        model.compile(keras.optimizers.SGD(0.0), build_loss("cce", class_weights=weights))
    history = model.fit(logits, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "loss": history.history["loss"][0]}))
    """
)


def test_loss_reduces_over_the_global_batch_under_mirrored_strategy():
    # Two logical CPUs must be configured before TensorFlow starts, hence a fresh process.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(16, 3)).astype("float32")
    labels = np.array([0] * 12 + [1, 2, 1, 2])
    y = np.eye(3, dtype="float32")[labels]
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    # sum(w_i * loss_i) / 16 over the global batch; the two replicas' halves have very different
    # weights, so a per-replica normalisation by the sum of weights would give another value.
    expected = _numpy_loss(y, prob, [0.5, 4.0, 2.0])
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
