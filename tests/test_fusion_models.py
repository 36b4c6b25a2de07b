"""Paper 004's parts on their own: the rows as data, the metadata vector (NumPy = TensorFlow), the
metrics (= scikit-learn), the fusion builder in the shared harness (two towers of one backbone in
one model, shared towers, float32 outputs under mixed precision) and the data helpers."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from skinkeras.systems.fusion import rows as table_rows
from tests import harness


def test_every_paper_row_is_in_the_table_with_its_figures():
    paper_rows = set(table_rows.PAPER_TABLE1)
    assert paper_rows <= set(table_rows.ROW_IDS)
    for row_id, figures in table_rows.PAPER_TABLE1.items():
        assert len(figures) == 4 and all(0 < mean < 1 for mean, _ in figures), row_id
    # The paper's text: embedding network, dsc mAP 0.669 -> dsc + macro 0.726 (AUC melanoma 0.831 -> 0.866).
    assert table_rows.PAPER_TABLE1["dsc_emb"][1][0] == 0.669 and table_rows.PAPER_TABLE1["dsc_macro_emb"][1][0] == 0.726
    assert table_rows.PAPER_TABLE1["dsc_macro_emb"][2][0] == 0.866


def test_fallbacks_drop_only_the_clinical_tower():
    for row in table_rows.ROWS:
        if row.uses_clinical and "dsc" in row.images:
            fallback = table_rows.ROWS_BY_ID[row.fallback]
            assert fallback.images == ("dsc",) and fallback.metadata == row.metadata
            assert fallback.embedding == row.embedding
        else:
            assert row.fallback is None


def _frame():
    return pd.DataFrame({"age": [40.0, np.nan, 70.0], "sex": ["female", "male", "unknown"],
                         "site": ["back", "head neck", "moon"], "elevation": ["flat", "nodular", ""]})


def test_metadata_vector_numpy_equals_tensorflow():
    import tensorflow as tf

    from skinkeras.data.derm7pt import DERM7PT_SITES
    from skinkeras.systems.fusion.features import MetadataVector

    frame = _frame()
    vector = MetadataVector.fit(frame, ("age", "sex", "site", "elevation"), sites=DERM7PT_SITES)
    expected = vector.encode_frame(frame)
    assert expected.shape == (3, vector.num_features) == (3, 2 + 3 + len(DERM7PT_SITES) + 3)
    got = vector.encode_tf(tf.constant(frame["age"].to_numpy(np.float32)), tf.constant(frame["sex"].tolist()),
                           tf.constant(frame["site"].tolist()), {"elevation": tf.constant(frame["elevation"].tolist())})
    np.testing.assert_array_equal(got.numpy(), expected)
    names = vector.feature_names
    assert expected[2, names.index("site_unknown")] == 1  # "moon": outside the vocabulary
    assert expected[2, names.index("elevation_unknown")] == 1
    again = MetadataVector.from_config(vector.to_config())
    np.testing.assert_array_equal(again.encode_frame(frame), expected)


def test_metadata_fields_the_dataset_lacks_are_left_out_and_typos_refused():
    from skinkeras.errors import ConfigError
    from skinkeras.systems.fusion.features import MetadataVector

    vector = MetadataVector.fit(_frame().drop(columns="elevation"), ("sex", "site", "elevation"))
    assert vector.fields == ("sex", "site") and not vector.extras
    assert not any(name.startswith("age") for name in vector.feature_names)
    full = MetadataVector.fit(_frame(), ("sex", "elevation"))
    assert full.check_fields({"elevation": "Nodular"}) == {"elevation": "nodular"}
    with pytest.raises(ConfigError, match="elevation must be one of"):
        full.check_fields({"elevation": "tall"})
    with pytest.raises(ConfigError, match="not a metadata field"):
        full.check_fields({"colour": "red"})


def test_metrics_equal_scikit_learn():
    from sklearn.metrics import average_precision_score, roc_auc_score

    from skinkeras.systems.fusion import stats

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    p = rng.dirichlet(np.ones(5), 200)
    p[:20] = np.round(p[:20], 1)  # ties
    functions = stats.metric_functions(("BCC", "NEV", "MEL", "MISC", "SK"), "MEL", ("BCC", "MEL"))
    got = stats.evaluate(functions, y, p)
    expected_map = np.mean([average_precision_score(y == c, p[:, c]) for c in range(5)])
    assert got["map"] == pytest.approx(expected_map, abs=1e-12)
    assert got["accuracy"] == pytest.approx(np.mean(p.argmax(1) == y))
    assert got["auc_melanoma"] == pytest.approx(roc_auc_score(y == 2, p[:, 2]), abs=1e-12)
    assert got["auc_cancer"] == pytest.approx(roc_auc_score(np.isin(y, [0, 2]), p[:, [0, 2]].sum(1)), abs=1e-12)
    batched = stats.map_batched(y, np.stack([p, p[::-1]]))
    assert batched[0] == pytest.approx(expected_map)
    assert stats.evaluate(stats.metric_functions(("a", "b"), "MEL", ()), [0, 1], [[.9, .1], [.2, .8]])["auc_melanoma"] is None


@pytest.fixture(scope="module")
def tiny_models():
    from skinkeras.systems.fusion.model import build_fusion_model

    def build(row_id, **kwargs):
        return build_fusion_model(table_rows.ROWS_BY_ID[row_id], num_classes=5, backbone="TinyCNN", image_size=32,
                                  metadata_features=6, embedding_units=(8, 8), **kwargs)

    return build


@pytest.mark.parametrize("row_id", ["dsc_macro_meta_emb", "dsc_macro_meta_emb_shared", "macro_noemb", "meta_emb"])
def test_fusion_models_pass_the_harness(tiny_models, row_id, tmp_path):
    model = tiny_models(row_id)
    harness.run_model_checks(model, harness.random_inputs(model), tmp_path)


def test_two_towers_have_their_own_weights_and_names(tiny_models):
    separate = tiny_models("dsc_macro_meta_emb")
    shared = tiny_models("dsc_macro_meta_emb_shared")
    assert {layer.name for layer in separate.layers} >= {"dsc_tower", "macro_tower"}
    assert "shared_tower" in {layer.name for layer in shared.layers}
    tower = separate.get_layer("dsc_tower").count_params()
    assert separate.count_params() - shared.count_params() == tower
    assert tiny_models("dsc_macro_meta_emb", shared=True).count_params() == shared.count_params()
    inputs = harness.random_inputs(separate)
    swapped = dict(inputs, dermoscopic=inputs["clinical"], clinical=inputs["dermoscopic"])
    assert not np.allclose(separate.predict_on_batch(inputs), separate.predict_on_batch(swapped))
    assert set(separate.input) == {"dermoscopic", "clinical", "metadata"}


def test_outputs_are_float32_under_mixed_precision(tiny_models):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny_models("dsc_macro_meta_emb", dtype="mixed_float16")
        harness.check_eager_call(model, harness.random_inputs(model))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_square_resize_takes_the_largest_centred_square():
    from skinkeras.systems.fusion.data import square_resize

    image = np.zeros((40, 100, 3), np.uint8)
    image[:, 30:70] = 200  # the centred 40 x 40 square
    out = square_resize(image, 20)
    assert out.shape == (20, 20, 3) and out.min() == 200
    assert square_resize(np.full((10, 30, 3), 7, np.uint8), 20).shape == (20, 20, 3)  # enlarged


def test_augmentation_is_seeded_per_image_and_keeps_the_range():
    import tensorflow as tf

    from skinkeras.systems.fusion.data import augment

    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 3)), tf.float32)
    a = augment(images, tf.constant([1, 2])).numpy()
    b = augment(images, tf.constant([1, 2])).numpy()
    c = augment(images, tf.constant([1, 3])).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 255 and a.shape == images.shape


def test_unreadable_images_exclude_a_case_or_drop_its_clinical_view(tmp_path):
    from skinkeras.data.derm7pt import load_derm7pt
    from skinkeras.data.synth.derm7pt import synthesize_derm7pt
    from skinkeras.systems.fusion.data import load_cases

    synthesize_derm7pt(tmp_path, n=12, seed=0, image_size=(40, 30), force=True)
    meta = pd.read_csv(tmp_path / "meta" / "meta.csv", dtype=str, keep_default_na=False)
    (tmp_path / "images" / meta.loc[0, "derm"]).write_bytes(b"not a jpeg")
    (tmp_path / "images" / meta.loc[1, "clinic"]).write_bytes(b"not a jpeg either")
    cases, problems = load_cases(load_derm7pt(tmp_path), 16)
    kinds = {p.image_id: p.kind for p in problems}
    assert kinds == {meta.loc[0, "case_num"]: "unreadable", meta.loc[1, "case_num"]: "missing_clinical"}
    assert len(cases) == 11 and meta.loc[0, "case_num"] not in set(cases.ids)
    position = list(cases.ids).index(meta.loc[1, "case_num"])
    assert not cases.has_clinical[position] and cases.has_clinical.sum() == 10
    assert cases.macro[position].max() == 0
