"""Paper 000's EIS / image / joint model builders (`skinkeras.systems.eis.model`) and their masked
layers: the shared harness checks, padding invariance, permutation behaviour of the pooling and the
GRU, last-state pooling against an unpadded GRU run, and the max rules of the FC-NN and CA models.

Tiny sizes: TinyCNN at 64 px, T = 4 measurements, 8 GRU units; each model is built once per module.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from skinkeras.systems.eis import layers as eis_layers
from skinkeras.systems.eis import model as eis_model
from tests import harness

T = 4
CROP = 64
SIZES = dict(units=8, hidden=8)
# Lesion 0: two real then padding; 1: all real; 2: padding in the middle; 3: one real.
MASK = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 1, 0], [1, 0, 0, 0]], dtype="float32")


def _statistics():
    rng = np.random.default_rng(7)
    mean = rng.normal(0.0, 2.0, eis_model.NUM_FEATURES).astype("float32")
    variance = rng.uniform(0.5, 4.0, eis_model.NUM_FEATURES).astype("float32")
    variance[5] = 0.0  # a constant training feature: must not divide by zero
    return mean, variance


MEAN, VARIANCE = _statistics()


def _inputs(steps=T, seed=0):
    """Raw features with zero padding rows, the mask, a 64 px image; padding rows appended beyond T."""
    rng = np.random.default_rng(seed)
    eis = rng.normal(MEAN, 2.0, size=(len(MASK), T, eis_model.NUM_FEATURES)).astype("float32")
    eis *= MASK[..., None]
    mask = MASK
    if steps > T:
        eis = np.concatenate([eis, np.zeros((len(MASK), steps - T, eis.shape[-1]), "float32")], axis=1)
        mask = np.concatenate([mask, np.zeros((len(MASK), steps - T), "float32")], axis=1)
    image = rng.uniform(0.0, 255.0, size=(len(MASK), CROP, CROP, 3)).astype("float32")
    return {"image": image, "eis": eis, "eis_mask": mask}


def _select(model, inputs):
    return {key: inputs[key] for key in model.input}


def _build(name, *, steps=T, dtype=None):
    kwargs = dict(max_measurements=steps, dtype=dtype)
    if name == "fcnn":
        return eis_model.build_fcnn(MEAN, VARIANCE, hidden=(8, 8), **kwargs)
    if name == "gru_max_embedded":  # a per-measurement Dense + BN + ReLU before the GRU
        return eis_model.build_gru("max", MEAN, VARIANCE, **SIZES, embedding=8, **kwargs)
    if name.startswith("gru_"):
        return eis_model.build_gru(name[4:], MEAN, VARIANCE, **SIZES, **kwargs)
    if name == "cnn":
        return eis_model.build_cnn("TinyCNN", CROP, dtype=dtype)
    fusion = name.split("_")[1]
    return eis_model.build_joint(fusion, "TinyCNN", CROP, MEAN, VARIANCE, fc_units=8, **SIZES, **kwargs)


NAMES = ("fcnn", "gru_last", "gru_mean", "gru_max", "gru_max_embedded", "cnn", "joint_lin", "joint_fc", "joint_ca")
SEQUENCE_NAMES = ("fcnn", "gru_last", "gru_mean", "gru_max", "gru_max_embedded", "joint_lin", "joint_fc", "joint_ca")


@pytest.fixture(scope="module")
def built():
    return {name: _build(name) for name in NAMES}


def _measurement_inputs():
    rng = np.random.default_rng(3)
    return {"eis_measurement": rng.normal(MEAN, 2.0, size=(4, eis_model.NUM_FEATURES)).astype("float32")}


def _targets(batch):
    return keras.utils.to_categorical(np.arange(batch) % 2, 2)


@pytest.mark.parametrize("name", NAMES)
def test_builders_pass_the_harness(name, built, tmp_path):
    models = built[name]
    assert isinstance(models, eis_model.EISModels)
    inputs = _inputs()
    if name == "fcnn":
        harness.run_model_checks(models.train, _measurement_inputs(), tmp_path)
        harness.run_model_checks(models.infer, _select(models.infer, inputs), tmp_path, train=False)
    elif name == "joint_ca":
        train_inputs = _select(models.train, inputs)
        assert sorted(models.train.output) == ["eis_path", "image_path"]
        harness.check_symbolic_call(models.train)
        harness.check_eager_call(models.train, train_inputs)  # both outputs: float32 probabilities
        targets = {key: _targets(len(MASK)) for key in ("image_path", "eis_path")}
        losses = {key: "categorical_crossentropy" for key in targets}  # summed, as the trainer does
        harness.check_training_step(models.train, train_inputs, targets, loss=losses)
        harness.check_save_load(models.train, train_inputs, tmp_path)
        harness.run_model_checks(models.infer, _select(models.infer, inputs), tmp_path, train=False)
    else:
        assert models.train is models.infer
        harness.run_model_checks(models.train, _select(models.train, inputs), tmp_path)


@pytest.mark.parametrize("name", ("fcnn", "gru_max", "joint_ca", "joint_fc"))
def test_outputs_float32_under_mixed_precision(name, built):
    inputs = _inputs()
    made = []

    def build(which):
        def make(dtype):
            made.append(getattr(_build(name, dtype=dtype), which))
            return made[-1]
        return make

    harness.check_mixed_precision(build("infer"), _select(built[name].infer, inputs))
    if name == "fcnn":
        harness.check_mixed_precision(build("train"), _measurement_inputs())
    if name == "joint_ca":  # both path outputs of the train model
        harness.check_mixed_precision(build("train"), _select(built[name].train, inputs))
    # Raw features are standardised in float32 (magnitudes may exceed float16's range).
    assert made[0].get_layer("eis_normalization").compute_dtype == "float32"
    assert made[0].get_layer("eis_normalization").dtype_policy.name == "float32"


def _outputs(model, inputs):
    return [keras.ops.convert_to_numpy(o) for o in harness._as_list(model(_select(model, inputs), training=False))]


@pytest.mark.parametrize("name", SEQUENCE_NAMES)
def test_padding_changes_no_output(name, built):
    models = built[name]
    longer = _build(name, steps=T + 3)
    longer.train.set_weights(models.train.get_weights())
    for short_model, long_model in ((models.train, longer.train), (models.infer, longer.infer)):
        if "eis" not in short_model.input:
            continue  # the FC-NN train model sees one measurement
        want = _outputs(short_model, _inputs())
        for got, expected in zip(_outputs(long_model, _inputs(steps=T + 3)), want):
            np.testing.assert_allclose(got, expected, atol=1e-5)
        # What padding rows hold does not matter either: only the mask says what is real.
        noisy = _inputs()
        noisy["eis"] = noisy["eis"] + (1.0 - MASK)[..., None] * 50.0
        for got, expected in zip(_outputs(short_model, noisy), want):
            np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("name", ("fcnn", "gru_last"))
def test_max_measurements_none_takes_any_length(name, built):
    models = _build(name, steps=None)
    models.train.set_weights(built[name].train.get_weights())
    want = _outputs(built[name].infer, _inputs())
    for steps in (T, T + 3):
        np.testing.assert_allclose(_outputs(models.infer, _inputs(steps=steps))[0], want[0], atol=1e-5)


def _random_states(seed=0, units=5):
    return np.random.default_rng(seed).normal(size=(len(MASK), T, units)).astype("float32")


def test_mean_and_max_pooling_are_permutation_invariant_last_is_not():
    states = _random_states()
    permutation = np.array([2, 0, 3, 1])
    for mode in ("max", "mean"):
        layer = eis_layers.MaskedStatePooling(mode)
        want = keras.ops.convert_to_numpy(layer([states, MASK]))
        got = keras.ops.convert_to_numpy(layer([states[:, permutation], MASK[:, permutation]]))
        if mode == "max":
            np.testing.assert_array_equal(got, want)
        else:  # the same sum in another order: equal up to float rounding
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    last = eis_layers.MaskedStatePooling("last")
    before = keras.ops.convert_to_numpy(last([states, MASK]))
    after = keras.ops.convert_to_numpy(last([states[:, permutation], MASK[:, permutation]]))
    assert not np.allclose(before[1], after[1])  # lesion 1 (all real) has a new last state


def test_pooling_against_numpy_and_all_padding_rows():
    states = _random_states(seed=1)
    mask = np.concatenate([MASK, np.zeros((1, T), "float32")])
    states = np.concatenate([states, _random_states(seed=2)[:1]])
    pooled = {
        mode: keras.ops.convert_to_numpy(eis_layers.MaskedStatePooling(mode)([states, mask]))
        for mode in eis_layers.POOLING_MODES
    }
    for row in range(len(MASK)):
        real = states[row][mask[row] > 0.5]
        np.testing.assert_allclose(pooled["max"][row], real.max(axis=0), rtol=1e-6)
        np.testing.assert_allclose(pooled["mean"][row], real.mean(axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(pooled["last"][row], real[-1], rtol=1e-6)
    for mode in eis_layers.POOLING_MODES:  # a lesion with no real measurement pools to zeros
        np.testing.assert_array_equal(pooled[mode][-1], 0.0)
    with pytest.raises(ValueError, match="Received: mode='min'"):
        eis_layers.MaskedStatePooling("min")


def _gru_parts(model):
    normalization = model.get_layer("eis_normalization")
    gru = model.get_layer("eis_gru")
    return normalization, gru


def test_gru_is_order_sensitive_only_through_its_states(built):
    model = built["gru_max"].train
    normalization, gru = _gru_parts(model)
    inputs = _inputs()
    reversed_inputs = dict(inputs)
    reversed_inputs["eis"] = inputs["eis"][:, ::-1].copy()
    reversed_inputs["eis_mask"] = inputs["eis_mask"][:, ::-1].copy()
    row = 1  # four real measurements
    states = keras.ops.convert_to_numpy(gru(normalization(inputs["eis"][row : row + 1])))
    states_of_reversed = keras.ops.convert_to_numpy(gru(normalization(reversed_inputs["eis"][row : row + 1])))
    # The GRU's states depend on the order ...
    assert not np.allclose(states_of_reversed, states[:, ::-1], atol=1e-4)
    # ... the pooling of the same states does not ...
    pool = model.get_layer("eis_state_max_pool")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(pool([states[:, ::-1], MASK[row : row + 1, ::-1]])),
        keras.ops.convert_to_numpy(pool([states, MASK[row : row + 1]])),
    )
    # ... so the model's output changes for a reordering (why the paper averages 5 permutations).
    before = _outputs(model, inputs)[0][row]
    after = _outputs(model, reversed_inputs)[0][row]
    assert np.max(np.abs(before - after)) > 1e-6, (before, after)


def test_last_state_pooling_is_the_gru_state_after_the_last_real_measurement(built):
    model = built["gru_last"].train
    normalization, gru = _gru_parts(model)
    pooled_model = keras.Model(model.input, model.get_layer("eis_state_last_pool").output)
    inputs = _inputs()
    pooled = keras.ops.convert_to_numpy(pooled_model(_select(model, inputs)))
    for row in range(len(MASK)):
        real = inputs["eis"][row][MASK[row] > 0.5][None]  # the unpadded sequence
        states = keras.ops.convert_to_numpy(gru(normalization(real)))
        np.testing.assert_allclose(pooled[row], states[0, -1], atol=1e-5)


def test_fcnn_lesion_probability_is_the_max_over_its_measurements(built):
    models = built["fcnn"]
    inputs = _inputs()
    lesion = _outputs(models.infer, inputs)[0]
    for row in range(len(MASK)):
        real = inputs["eis"][row][MASK[row] > 0.5]
        per_measurement = keras.ops.convert_to_numpy(models.train({"eis_measurement": real}, training=False))
        malignant = per_measurement[:, 1].max()
        np.testing.assert_allclose(lesion[row], [1.0 - malignant, malignant], atol=1e-6)


def test_ca_prediction_is_the_max_of_its_two_paths(built):
    models = built["joint_ca"]
    inputs = _select(models.train, _inputs())
    paths = models.train(inputs, training=False)
    malignant = np.maximum(
        keras.ops.convert_to_numpy(paths["image_path"])[:, 1], keras.ops.convert_to_numpy(paths["eis_path"])[:, 1]
    )
    combined = keras.ops.convert_to_numpy(models.infer(inputs, training=False))
    np.testing.assert_allclose(combined, np.stack([1.0 - malignant, malignant], axis=1), atol=1e-6)
    # The two models share every weight.
    assert {id(w) for w in models.infer.weights} == {id(w) for w in models.train.weights}


def test_builders_reject_bad_arguments_and_floor_zero_variance(built):
    with pytest.raises(ValueError, match="Received: pooling='min'"):
        eis_model.build_gru("min", MEAN, VARIANCE, max_measurements=T)
    with pytest.raises(ValueError, match="Received: fusion='sum'"):
        eis_model.build_joint("sum", "TinyCNN", CROP, MEAN, VARIANCE, max_measurements=T)
    with pytest.raises(ValueError, match="700 values"):
        eis_model.build_fcnn(MEAN[:10], VARIANCE[:10], max_measurements=T)
    normalization = built["gru_max"].train.get_layer("eis_normalization")
    assert not normalization.trainable and not normalization.trainable_weights
    variance = keras.ops.convert_to_numpy(normalization.variance).reshape(-1)
    assert variance[5] == 1.0 and np.allclose(variance[:5], VARIANCE[:5])
