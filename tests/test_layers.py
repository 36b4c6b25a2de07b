"""Oracle tests of the zoo's layers: each against a NumPy version of its formula (or tf_keras)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from skinkeras.models.cbam import CBAM
from skinkeras.models.cross_attention import cross_attention_gating
from skinkeras.models.ensemble_head import build_ensemble_head
from skinkeras.models.locally_connected import LocallyConnected1D
from skinkeras.models.metadata_branch import metadata_branch
from skinkeras.models.soft_attention import SoftAttention, soft_attention_module
from skinkeras.models.squeeze_excitation import squeeze_excite
from tests import harness


def np_conv2d_same(x, kernel, bias):
    """Stride-1 'same' 2D convolution (cross-correlation, as Keras), NumPy."""
    kh, kw = kernel.shape[:2]
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    padded = np.pad(x, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)))
    h, w = x.shape[1:3]
    out = np.zeros((x.shape[0], h, w, kernel.shape[-1]))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("bhwc,cf->bhwf", padded[:, i : i + h, j : j + w, :], kernel[i, j])
    return out + bias


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_soft_attention(x, kernel, bias, gamma):
    logits = np.maximum(np_conv2d_same(x, kernel, bias), 0.0)
    b, h, w, k = logits.shape
    alpha = softmax(logits.reshape(b, h * w, k), axis=1).reshape(b, h, w, k)
    attention = alpha.sum(axis=-1, keepdims=True)
    return gamma * attention * x, attention


# ---------------------------------------------------------------- soft attention


@pytest.mark.parametrize("gamma_init", [0.01, 0.7, None])
def test_soft_attention_matches_numpy_formula(gamma_init):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 6, 8)).astype("float32")
    layer = SoftAttention(num_heads=4, gamma_init=gamma_init, return_attention=True)
    layer(x)
    kernel = rng.standard_normal(layer.conv.kernel.shape).astype("float32") * 0.5
    bias = rng.standard_normal(layer.conv.bias.shape).astype("float32") * 0.1
    layer.conv.set_weights([kernel, bias])
    out, attention = (keras.ops.convert_to_numpy(t) for t in layer(x))
    want, want_attention = np_soft_attention(x, kernel, bias, 1.0 if gamma_init is None else gamma_init)
    np.testing.assert_allclose(attention, want_attention, atol=1e-5)
    np.testing.assert_allclose(out, want, atol=1e-5)
    # Each head is a distribution over the 30 positions, so the summed map sums to K.
    np.testing.assert_allclose(attention.sum(axis=(1, 2, 3)), 4.0, atol=1e-4)


def test_soft_attention_gamma_is_learnable_and_optional():
    with_gamma = SoftAttention(num_heads=16, gamma_init=0.01)
    with_gamma.build((None, 7, 7, 128))
    assert [w.name for w in with_gamma.trainable_weights if w.name == "gamma"] == ["gamma"]
    assert float(keras.ops.convert_to_numpy(with_gamma.gamma)) == pytest.approx(0.01)
    without = SoftAttention(num_heads=16, gamma_init=None)
    without.build((None, 7, 7, 128))
    assert without.count_params() == with_gamma.count_params() - 1


@pytest.mark.parametrize("channels, expected", [(128, 18_448), (192, 27_664), (2048, 294_928), (960, 138_256)])
def test_soft_attention_parameter_counts_match_reference(channels, expected):
    # REFERENCES.md: the reference layer (no gamma) has 9*C*K + K weights with K = 16.
    layer = SoftAttention(num_heads=16, gamma_init=None)
    layer.build((None, 7, 7, channels))
    assert layer.count_params() == expected


@pytest.mark.parametrize("policy", harness.MIXED_POLICIES)
def test_soft_attention_softmax_in_float32_under_mixed_precision(policy):
    rng = np.random.default_rng(2)
    # 32 x 32 = 1024 positions: a float16 softmax sum over them would lose the per-head sum of 1.
    x = rng.standard_normal((1, 32, 32, 4)).astype("float32")
    layer = SoftAttention(num_heads=2, gamma_init=None, return_attention=True, dtype=policy)
    layer(x)
    kernel = rng.standard_normal(layer.conv.kernel.shape).astype("float32")
    layer.conv.set_weights([kernel, np.zeros(2, "float32")])
    out, attention = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    want_out, want_attention = np_soft_attention(x, kernel, 0.0, 1.0)
    attention = keras.ops.convert_to_numpy(keras.ops.cast(attention, "float32"))
    np.testing.assert_allclose(attention.sum(), 2.0, rtol=1e-2)
    # The conv logits carry the policy's precision (bfloat16: ~3 significant digits, so a logit of 8
    # is off by ~0.03 and its exponential by a few per cent); the softmax itself is float32.
    rtol = 0.05 if policy == "mixed_float16" else 0.15
    np.testing.assert_allclose(attention, want_attention, rtol=rtol, atol=2e-3)


def test_soft_attention_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_heads=0"):
        SoftAttention(num_heads=0)
    with pytest.raises(ValueError, match="input_shape"):
        SoftAttention()(np.zeros((2, 3, 4), "float32"))


def test_soft_attention_module_shape_and_round_trip(tmp_path):
    inputs = keras.Input((6, 6, 8))
    vector = soft_attention_module(inputs, num_heads=4)
    outputs = keras.layers.Dense(3, activation="softmax", dtype="float32")(vector)
    model = keras.Model(inputs, outputs)
    # 6x6 pooled to 3x3, two concatenated 8-channel paths.
    assert tuple(vector.shape) == (None, 3 * 3 * 16)
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 8)).astype("float32")
    harness.run_model_checks(model, x, tmp_path)


# ---------------------------------------------------------------- squeeze-and-excitation


@pytest.mark.parametrize("ratio", [4, 16])
def test_squeeze_excite_matches_numpy_formula(ratio, tmp_path):
    inputs = keras.Input((4, 5, 32))
    model = keras.Model(inputs, squeeze_excite(inputs, ratio=ratio, name="se"))
    reduce_w, reduce_b = model.get_layer("se_reduce").get_weights()
    expand_w, expand_b = model.get_layer("se_expand").get_weights()
    assert reduce_w.shape == (32, 32 // ratio)
    x = np.random.default_rng(3).standard_normal((2, 4, 5, 32)).astype("float32")
    z = x.mean(axis=(1, 2))
    s = sigmoid(np.maximum(z @ reduce_w + reduce_b, 0) @ expand_w + expand_b)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), x * s[:, None, None, :], atol=1e-5)
    harness.check_save_load(model, x, tmp_path)


# ---------------------------------------------------------------- CBAM


def test_cbam_matches_numpy_formula(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 7, 16)).astype("float32")
    layer = CBAM(ratio=4, kernel_size=7)
    layer(x)
    for sub in (layer.mlp_hidden, layer.mlp_out, layer.spatial_conv):
        sub.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.3 for w in sub.get_weights()])
    w1, b1 = layer.mlp_hidden.get_weights()
    w2, b2 = layer.mlp_out.get_weights()
    kernel, bias = layer.spatial_conv.get_weights()

    def mlp(v):
        return np.maximum(v @ w1 + b1, 0) @ w2 + b2

    channel = sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))
    refined = x * channel[:, None, None, :]
    pooled = np.concatenate([refined.mean(-1, keepdims=True), refined.max(-1, keepdims=True)], -1)
    want = refined * sigmoid(np_conv2d_same(pooled, kernel, bias))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), want, atol=1e-5)
    inputs = keras.Input((6, 7, 16))
    harness.check_save_load(keras.Model(inputs, CBAM(ratio=4)(inputs)), x, tmp_path)


# ---------------------------------------------------------------- locally connected


@pytest.mark.parametrize(
    "length, channels, filters, kernel_size, strides",
    [(3, 5, 20, 1, 1), (3, 20, 1, 1, 1), (9, 4, 6, 3, 2), (7, 3, 2, 2, 1)],
)
def test_locally_connected_matches_tf_keras(length, channels, filters, kernel_size, strides):
    tf_keras = pytest.importorskip("tf_keras")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, length, channels)).astype("float32")
    ours = LocallyConnected1D(filters, kernel_size, strides=strides, activation="tanh")
    ours(x)
    oracle = tf_keras.layers.LocallyConnected1D(
        filters, kernel_size, strides=strides, activation="tanh", implementation=1
    )
    oracle(x)
    weights = [rng.standard_normal(w.shape).astype("float32") for w in oracle.get_weights()]
    assert [w.shape for w in weights] == [tuple(w.shape) for w in ours.weights]
    oracle.set_weights(weights)
    ours.set_weights(weights)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(x)), oracle(x).numpy(), atol=1e-6, rtol=1e-6
    )


def test_locally_connected_kernel_one_is_per_position_einsum(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 5)).astype("float32")
    layer = LocallyConnected1D(4, 1)
    layer(x)
    kernel, bias = (rng.standard_normal(w.shape).astype("float32") for w in layer.weights)
    layer.set_weights([kernel, bias])
    want = np.einsum("bti,tif->btf", x, kernel) + bias
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), want, atol=1e-5)
    inputs = keras.Input((3, 5))
    harness.check_save_load(keras.Model(inputs, LocallyConnected1D(4, 1)(inputs)), x, tmp_path)
    with pytest.raises(ValueError, match="filters=0"):
        LocallyConnected1D(0)


# ---------------------------------------------------------------- ensemble head (paper 002)


def test_ensemble_head_has_423_parameters_and_per_class_weights(tmp_path):
    model = build_ensemble_head(num_models=5, num_classes=3, hidden_units=20)
    assert model.count_params() == 423
    rng = np.random.default_rng(7)
    probs = {f"model_{i}": softmax(rng.standard_normal((4, 3)), axis=1).astype("float32") for i in range(5)}
    # Oracle: stack (B, 3 classes, 5 models), per-class affine maps, softmax over classes.
    w1, b1 = model.get_layer("ensemble_lc1").get_weights()
    w2, b2 = model.get_layer("ensemble_lc2").get_weights()
    stacked = np.stack([probs[f"model_{i}"] for i in range(5)], axis=-1)
    hidden = np.einsum("bti,tif->btf", stacked, w1) + b1
    logits = (np.einsum("bti,tif->btf", hidden, w2) + b2)[..., 0]
    got = harness.check_eager_call(model, probs)[0]
    np.testing.assert_allclose(got, softmax(logits, axis=1), atol=1e-5)
    # Class 0's logit depends only on the five models' class-0 scores.
    logits_model = keras.Model(model.input, model.get_layer("ensemble_flatten").output)
    changed = {k: v.copy() for k, v in probs.items()}
    for v in changed.values():
        v[:, 1:] = rng.uniform(size=v[:, 1:].shape)
    before = keras.ops.convert_to_numpy(logits_model(probs))
    after = keras.ops.convert_to_numpy(logits_model(changed))
    np.testing.assert_allclose(after[:, 0], before[:, 0], atol=1e-6)
    assert not np.allclose(after[:, 1:], before[:, 1:])
    harness.run_model_checks(model, probs, tmp_path)


# ---------------------------------------------------------------- cross-attention (paper 000)


def test_cross_attention_gating_matches_formula(tmp_path):
    a, b = keras.Input((6,), name="a"), keras.Input((3,), name="b")
    gated_a, gated_b = cross_attention_gating(a, b, name="ca")
    model = keras.Model({"a": a, "b": b}, [gated_a, gated_b])
    rng = np.random.default_rng(8)
    x = {"a": rng.standard_normal((2, 6)).astype("float32"), "b": rng.standard_normal((2, 3)).astype("float32")}
    wa, ca = model.get_layer("ca_gate_a").get_weights()
    wb, cb = model.get_layer("ca_gate_b").get_weights()
    assert wa.shape == (3, 6) and wb.shape == (6, 3)
    got_a, got_b = (keras.ops.convert_to_numpy(t) for t in model(x))
    np.testing.assert_allclose(got_a, x["a"] * sigmoid(x["b"] @ wa + ca), atol=1e-6)
    np.testing.assert_allclose(got_b, x["b"] * sigmoid(x["a"] @ wb + cb), atol=1e-6)
    harness.check_save_load(model, x, tmp_path)


# ---------------------------------------------------------------- metadata branches


def test_metadata_branches_parameter_counts():
    paper001 = keras.Model(i := keras.Input((21,)), metadata_branch(i, "paper001"))
    assert paper001.count_params() == 21 * 4096 + 4096
    gessert = keras.Model(j := keras.Input((20,)), metadata_branch(j, "gessert"))
    dense = (20 * 256 + 256) + (256 * 256 + 256)
    assert gessert.count_params() == dense + 2 * 4 * 256
    assert sum(isinstance(l, keras.layers.Dropout) and l.rate == 0.4 for l in gessert.layers) == 2
    with pytest.raises(ValueError, match="kind='nope'"):
        metadata_branch(j, "nope")
