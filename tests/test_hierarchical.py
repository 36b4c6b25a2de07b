"""Paper 003's flat and hierarchical models (skinkeras.models.hierarchical): the taxonomy, its
targets and path products, the shared harness checks, the loss against equation 10, mixed
precision, SavedModel export of the inference model, and the CBAM attention maps for heatmaps.

Tiny sizes: TinyCNN at 32 px, 8 LSTM units, CBAM ratio 4, batches of 4; each model built once.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from skinkeras.data.ham10000 import CLASS_NAMES
from skinkeras import saving
from skinkeras.explain import heatmap
from skinkeras.models import hierarchical as hier
from skinkeras.models.cbam import CBAM
from tests import harness

SIZE = 32
TAXONOMY = hier.HAM10000_TAXONOMY
LABELS = np.array([CLASS_NAMES.index(c) for c in ("nv", "mel", "df", "akiec")])  # 2 mel., 2 non-mel.


def _build_hierarchical(dtype=None):
    return hier.build_hierarchical("TinyCNN", image_size=SIZE, lstm_units=8, cbam_ratio=4, dtype=dtype)


def _build_flat(dtype=None):
    return hier.build_flat_cbam("TinyCNN", 7, image_size=SIZE, cbam_ratio=4, dtype=dtype)


@pytest.fixture(scope="module")
def hierarchical():
    keras.utils.set_random_seed(0)
    return _build_hierarchical()


@pytest.fixture(scope="module")
def flat():
    keras.utils.set_random_seed(0)
    return _build_flat()


def _inputs(model, batch_size=4):
    return harness.random_inputs(model, batch_size=batch_size)


def _outputs(model, inputs):
    return {k: keras.ops.convert_to_numpy(v) for k, v in model(inputs, training=False).items()}


# ---------------------------------------------------------------- taxonomy
def test_ham10000_taxonomy_matches_the_dataset_and_the_paper():
    assert hier.HAM10000_CLASSES == CLASS_NAMES
    assert [(h.name, h.children) for h in TAXONOMY.heads] == [
        ("level1_lesion", ("melanocytic", "non_melanocytic")),
        ("level2_melanocytic", ("nv", "mel")),
        ("level2_non_melanocytic", ("benign", "malignant")),
        ("level3_benign", ("bkl", "df", "vasc")),
        ("level3_malignant", ("bcc", "akiec")),
    ]
    assert TAXONOMY.num_levels == 3
    depths = dict(zip(CLASS_NAMES, (len(p) for p in TAXONOMY.paths)))
    assert depths == {"akiec": 3, "bcc": 3, "bkl": 3, "df": 3, "mel": 2, "nv": 2, "vasc": 3}


def test_taxonomy_rejects_bad_trees():
    leaf = hier.TaxonomyNode
    with pytest.raises(ValueError, match="leaves"):
        hier.Taxonomy(leaf("root", (leaf("a"), leaf("b"))), ("a", "b", "c"))
    with pytest.raises(ValueError, match="leaves"):
        hier.Taxonomy(leaf("root", (leaf("a"), leaf("a"))), ("a", "a"))
    with pytest.raises(ValueError, match="at least 2 children"):
        hier.Taxonomy(leaf("root", (leaf("x", (leaf("a"),)), leaf("b"))), ("a", "b"))
    with pytest.raises(ValueError, match="labels"):
        TAXONOMY.targets([0, 7])


def test_targets_and_weights_follow_each_path():
    targets, weights = TAXONOMY.targets(LABELS)  # nv, mel, df, akiec
    assert set(targets) == set(weights) == set(TAXONOMY.head_names)
    np.testing.assert_array_equal(weights["level1_lesion"], [1, 1, 1, 1])
    np.testing.assert_array_equal(weights["level2_melanocytic"], [1, 1, 0, 0])
    np.testing.assert_array_equal(weights["level2_non_melanocytic"], [0, 0, 1, 1])
    # Melanocytic samples have 2 levels: every level-3 head gets weight 0 (and an all-zero target).
    for name in ("level3_benign", "level3_malignant"):
        np.testing.assert_array_equal(weights[name][:2], [0, 0])
        np.testing.assert_array_equal(targets[name][:2], 0.0)
    np.testing.assert_array_equal(weights["level3_benign"], [0, 0, 1, 0])
    np.testing.assert_array_equal(weights["level3_malignant"], [0, 0, 0, 1])
    np.testing.assert_array_equal(targets["level1_lesion"], [[1, 0], [1, 0], [0, 1], [0, 1]])
    np.testing.assert_array_equal(targets["level2_melanocytic"][:2], [[1, 0], [0, 1]])
    np.testing.assert_array_equal(targets["level3_benign"][2], [0, 1, 0])  # df
    np.testing.assert_array_equal(targets["level3_malignant"][3], [0, 1])  # akiec
    # The weights count the levels each sample has.
    np.testing.assert_array_equal(sum(weights.values()), [2, 2, 3, 3])


def test_probabilities_layer_matches_numpy_and_sums_to_one():
    rng = np.random.default_rng(1)
    heads = {h.name: rng.dirichlet(np.ones(len(h.children)), size=5).astype("float32") for h in TAXONOMY.heads}
    layer = hier.HierarchyProbabilities(TAXONOMY.paths)
    got = keras.ops.convert_to_numpy(layer([heads[name] for name in TAXONOMY.head_names]))
    want = TAXONOMY.class_probabilities(heads)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-6)
    # p(df) = p(non-mel) p(benign | non-mel) p(df | benign); p(mel) = p(mel.) p(mel | mel.)
    df, mel = CLASS_NAMES.index("df"), CLASS_NAMES.index("mel")
    np.testing.assert_allclose(
        got[:, df], heads["level1_lesion"][:, 1] * heads["level2_non_melanocytic"][:, 0] * heads["level3_benign"][:, 1],
        rtol=1e-6)
    np.testing.assert_allclose(got[:, mel], heads["level1_lesion"][:, 0] * heads["level2_melanocytic"][:, 1], rtol=1e-6)
    assert hier.HierarchyProbabilities.from_config(layer.get_config()).paths == layer.paths


# ---------------------------------------------------------------- models: harness
def test_flat_model_passes_the_harness(flat, tmp_path):
    assert flat.get_layer("head_cbam").__class__ is CBAM
    assert flat.get_layer("dropout").rate == 0.5
    harness.run_model_checks(flat, _inputs(flat), tmp_path)


def test_hierarchical_model_passes_the_harness(hierarchical, tmp_path):
    model = hierarchical
    assert sorted(model.output) == sorted([*TAXONOMY.head_names, "probabilities"])
    assert [type(model.get_layer(f"level{l}_cbam")) for l in (1, 2, 3)] == [CBAM] * 3
    inputs = _inputs(model)
    harness.check_symbolic_call(model)
    outputs = harness.check_eager_call(model, inputs)  # every output: float32, sums to 1
    assert len(outputs) == 6
    # Level-conditioned attention: the three levels' CBAMs hold different weights.
    w1, w2 = (model.get_layer(f"level{l}_cbam").get_weights()[0] for l in (1, 2))
    assert not np.array_equal(w1, w2)
    harness.check_save_load(model, inputs, tmp_path)  # before training: the fixture stays untrained
    # The apps' loader (safe mode; it imports every `skinkeras.models` submodule, this one included).
    model.save(tmp_path / "h.keras")
    loaded = saving.load_model(tmp_path / "h.keras", compile=False)
    want, got = _outputs(model, inputs), _outputs(loaded, inputs)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6)


def test_hierarchical_training_step_uses_path_weights(tmp_path):
    keras.utils.set_random_seed(2)
    model = _build_hierarchical()
    inputs = _inputs(model)
    targets, weights = TAXONOMY.targets(LABELS)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss=hier.hierarchical_losses(), jit_compile=False)
    # Equation 10: the loss is the batch mean of the per-sample sum of the on-path cross-entropies.
    outputs = _outputs(model, inputs)
    per_sample = sum(
        -np.log(np.sum(outputs[name] * targets[name], axis=-1).clip(1e-7)) * weights[name]
        for name in TAXONOMY.head_names)
    evaluated = model.evaluate(inputs, targets, sample_weight=weights, verbose=0, return_dict=True)
    np.testing.assert_allclose(evaluated["loss"], per_sample.mean(), rtol=1e-4)
    # A melanocytic-only batch gives no gradient to the level-3 heads.
    mel_inputs = {"image": inputs["image"][:2]}
    mel_targets, mel_weights = TAXONOMY.targets(LABELS[:2])
    level3 = [model.get_layer(n) for n in ("level3_benign", "level3_malignant")]
    before = [w.copy() for layer in level3 for w in layer.get_weights()]
    lesion_before = model.get_layer("level1_lesion").get_weights()[0].copy()
    result = model.train_on_batch(mel_inputs, mel_targets, sample_weight=mel_weights, return_dict=True)
    assert np.isfinite(result["loss"])
    after = [w for layer in level3 for w in layer.get_weights()]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model.get_layer("level1_lesion").get_weights()[0], lesion_before)
    # A mixed batch through the harness's training step (every head gets a gradient).
    harness.check_training_step(model, inputs, targets, loss=hier.hierarchical_losses())


def test_fit_with_sample_weights(tmp_path):
    keras.utils.set_random_seed(3)
    model = _build_hierarchical()
    inputs = _inputs(model)
    targets, weights = TAXONOMY.targets(LABELS)
    model.compile(optimizer="adam", loss=hier.hierarchical_losses(), jit_compile=False)
    history = model.fit(inputs, targets, sample_weight=weights, epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("which", ("flat", "hierarchical"))
def test_outputs_float32_under_mixed_precision(which):
    build = _build_flat if which == "flat" else _build_hierarchical
    harness.check_mixed_precision(build, _inputs(build(None), batch_size=2), policies=("mixed_bfloat16",))
    model = build("mixed_bfloat16")
    assert model.get_layer("head_cbam" if which == "flat" else "level1_cbam").dtype_policy.name == "mixed_bfloat16"


# ---------------------------------------------------------------- export
def test_inference_model_exports_as_saved_model(hierarchical, tmp_path):
    infer = hier.inference_model(hierarchical)
    inputs = _inputs(hierarchical)
    want = _outputs(hierarchical, inputs)["probabilities"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(infer(inputs, training=False)), want, atol=1e-6)
    assert infer.count_params() == hierarchical.count_params()
    path = tmp_path / "saved"
    infer.export(str(path), format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(str(path))  # kept: the function references its variables
    served = loaded.serve(inputs)
    got = keras.ops.convert_to_numpy(served)
    assert got.shape == (4, len(CLASS_NAMES))
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="probabilities"):
        hier.inference_model(infer)


# ---------------------------------------------------------------- attention maps
def _calibrated(model):
    # Random BatchNorm statistics shrink TinyCNN's features to ~0 (constant maps); one
    # training-mode pass with momentum 0 sets them from a batch, as a short training would.
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(_inputs(model, batch_size=8), training=True)
    return model


def test_cbam_gates_give_the_layer_output():
    x = np.random.default_rng(4).normal(size=(2, 5, 6, 16)).astype("float32")
    layer = CBAM(ratio=4)
    out = keras.ops.convert_to_numpy(layer(x))
    channel, spatial = (keras.ops.convert_to_numpy(g) for g in layer.gates(x))
    assert channel.shape == (2, 1, 1, 16) and spatial.shape == (2, 5, 6, 1)
    np.testing.assert_allclose(out, x * channel * spatial, rtol=1e-6)
    assert channel.min() >= 0 and channel.max() <= 1 and spatial.min() >= 0 and spatial.max() <= 1


@pytest.mark.parametrize("which", ("flat", "hierarchical"))
def test_attention_maps_for_heatmaps(which):
    keras.utils.set_random_seed(5)
    model = _calibrated(_build_flat() if which == "flat" else _build_hierarchical())
    batch = _inputs(model, batch_size=1)["image"]
    maps = heatmap.cbam_attention_maps(model, batch)
    names = ["head_cbam"] if which == "flat" else ["level1_cbam", "level2_cbam", "level3_cbam"]
    assert list(maps) == names
    feature_size = SIZE // 16  # TinyCNN: four stride-2 blocks
    for name, attention in maps.items():
        assert attention.shape == (feature_size, feature_size), name
        assert attention.dtype == np.float32
        assert np.all((attention >= 0.0) & (attention <= 1.0)), name
    # `skinkeras predict --heatmap` path: auto picks the CBAM map, at the image's own size, in 0..1.
    assert heatmap.resolve_method(model) == "attention"
    image = np.random.default_rng(6).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    heat = heatmap.explain(model, image)
    assert heat.shape == (40, 50) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    if which == "hierarchical":  # the map of the predicted class's last level
        resized = heatmap._resized_batch(model, image)
        probabilities = _outputs(model, {"image": resized})["probabilities"][0]
        depth = len(TAXONOMY.paths[int(np.argmax(probabilities))])
        chosen = heatmap.attention_map(model, resized)
        np.testing.assert_array_equal(chosen, heatmap.cbam_attention_maps(model, resized)[f"level{depth}_cbam"])
