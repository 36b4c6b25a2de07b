"""Metadata encoding: TF ops vs the NumPy path, missing values, fitting, config, dropout."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

tf = pytest.importorskip("tensorflow")

from skinkeras.data.metadata import HAM10000_SITES, MetadataEncoding, random_missing  # noqa: E402

FRAME = pd.DataFrame(
    {
        "age": [30.0, 50.0, np.nan, 70.0, 45.0],
        "sex": ["female", "male", "unknown", "Male ", None],
        "site": ["back", "face", "unknown", "Lower Extremity", "nowhere"],
        "dx_type": ["histo"] * 5,
    }
)


def test_num_features_and_names_ham10000():
    enc = MetadataEncoding()
    assert enc.num_features == 20
    assert len(enc.feature_names) == 20
    assert enc.feature_names[:5] == ("age_normalised", "age_missing", "sex_female", "sex_male", "sex_unknown")
    assert len(HAM10000_SITES) == 15 and "unknown" in enc.sites


def test_fit_uses_known_ages_only():
    enc = MetadataEncoding.fit(FRAME)
    known = np.array([30.0, 50.0, 70.0, 45.0])
    assert enc.age_mean == pytest.approx(known.mean())
    assert enc.age_std == pytest.approx(known.std())
    single = MetadataEncoding.fit(pd.DataFrame({"age": [np.nan, 40.0]}))
    assert single.age_std == 1.0 and single.age_mean == 40.0


def test_numpy_encoding_values():
    enc = MetadataEncoding(age_mean=50.0, age_std=10.0)
    out = enc.encode_frame(FRAME)
    site = lambda name: 5 + enc.sites.index(name)  # noqa: E731
    np.testing.assert_allclose(out[:, 0], [-2.0, 0.0, 0.0, 2.0, -0.5])
    np.testing.assert_array_equal(out[:, 1], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(out[:, 2:5], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]])
    assert out[0, site("back")] == 1 and out[3, site("lower extremity")] == 1
    assert out[4, site("unknown")] == 1  # out-of-vocabulary site -> unknown
    np.testing.assert_array_equal(out[:, 5:].sum(axis=1), 1)


def test_tf_encoding_agrees_with_numpy_eagerly_and_in_map():
    enc = MetadataEncoding.fit(FRAME)
    age = FRAME["age"].to_numpy(np.float32)
    sex = FRAME["sex"].fillna("unknown").to_numpy(dtype=object).astype(str)
    site = FRAME["site"].to_numpy(dtype=object).astype(str)
    expected = enc.encode_frame(FRAME)
    np.testing.assert_allclose(enc.encode(age, sex, site).numpy(), expected, atol=1e-6)
    dataset = tf.data.Dataset.from_tensor_slices((age, sex, site)).map(enc.encode).batch(5)
    np.testing.assert_allclose(next(iter(dataset)).numpy(), expected, atol=1e-6)


def test_encoding_in_a_saved_model_signature(tmp_path):
    enc = MetadataEncoding(age_mean=40.0, age_std=20.0)

    class Module(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.float32),
                tf.TensorSpec([None], tf.string),
                tf.TensorSpec([None], tf.string),
            ]
        )
        def encode(self, age, sex, site):
            return enc.encode(age, sex, site)

    tf.saved_model.save(Module(), str(tmp_path / "m"))
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    out = loaded.encode(tf.constant([60.0]), tf.constant(["female"]), tf.constant(["scalp"])).numpy()
    np.testing.assert_allclose(out, enc.encode_numpy([60.0], ["female"], ["scalp"]))


def test_config_round_trip_and_custom_sites():
    enc = MetadataEncoding(age_mean=51.5, age_std=16.0, sites=("back", "Face"))
    assert enc.sites == ("back", "face", "unknown")
    assert enc.num_features == 8
    again = MetadataEncoding.from_config(json.loads(json.dumps(enc.to_config())))
    assert again == enc
    with pytest.raises(ValueError, match="age_std"):
        MetadataEncoding(age_std=0.0)
    with pytest.raises(ValueError, match="unique"):
        MetadataEncoding(sites=("back", "back"))


def test_random_missing_rate_and_determinism():
    n = 20000
    age = tf.fill([n], 50.0)
    sex = tf.fill([n], "male")
    site = tf.fill([n], "back")
    seed = tf.constant([7, 8])
    a, s, l = random_missing(age, sex, site, seed, rate=0.1)
    rates = [np.isnan(a.numpy()).mean(), (s.numpy() == b"unknown").mean(), (l.numpy() == b"unknown").mean()]
    for rate in rates:
        assert 0.09 < rate < 0.11
    # Independent per property: both missing at about 0.01.
    both = np.mean(np.isnan(a.numpy()) & (s.numpy() == b"unknown"))
    assert 0.007 < both < 0.013
    a2, _, _ = random_missing(age, sex, site, seed, rate=0.1)
    np.testing.assert_array_equal(np.isnan(a.numpy()), np.isnan(a2.numpy()))
    a0, s0, _ = random_missing(age, sex, site, seed, rate=0.0)
    assert not np.isnan(a0.numpy()).any() and (s0.numpy() == b"male").all()
    with pytest.raises(ValueError, match="rate"):
        random_missing(age, sex, site, seed, rate=1.5)
