"""Generated data: deterministic, labelled as not medical, learnable, and in the real layouts."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from skinkeras.data import load_dataset
from skinkeras.data.eis import FREQUENCIES_HZ, load_spectra, spectra_to_features
from skinkeras.data.synth import GENERATORS, NOTICE_FILE, synthesize
from skinkeras.data.synth.common import parse_image_size
from skinkeras.data.synth.eis import cole_impedance, lesion_parameters
from skinkeras.errors import DataError, SkinkerasError


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_seed_same_bytes_other_seed_other_bytes_and_a_notice(name, tmp_path):
    first = synthesize(name, tmp_path / "a", n=8, seed=5, image_size="40x32")
    second = synthesize(name, tmp_path / "b", n=8, seed=5, image_size="40x32")
    other = synthesize(name, tmp_path / "c", n=8, seed=6, image_size="40x32")
    assert _digest(first.out_dir) == _digest(second.out_dir) != _digest(other.out_dir)
    notice = (first.out_dir / NOTICE_FILE).read_text()
    assert "NOT MEDICAL DATA" in notice and "seed: 5" in notice
    assert "NOT MEDICAL DATA" in first.describe()
    assert sum(first.class_counts.values()) == 8
    assert len(load_dataset(name, first.out_dir)) == 8


def test_refuses_a_non_empty_folder_unless_forced(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        synthesize("ham10000", tmp_path / "out", n=3, seed=0)
    synthesize("ham10000", tmp_path / "out", n=3, seed=0, force=True)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    with pytest.raises(SkinkerasError, match="valid names"):
        synthesize("ham2000", tmp_path / "x", n=3)


def test_image_size_parsing_and_default_sizes(tmp_path):
    assert parse_image_size("200x150") == (200, 150) and parse_image_size((64, 48)) == (64, 48)
    for bad in ("200", "ax3", "8x8", "200x150x3"):
        with pytest.raises(DataError, match="Received"):
            parse_image_size(bad)
    ham = load_dataset("ham10000", synthesize("ham10000", tmp_path / "h", n=2, seed=0).out_dir)
    isic = load_dataset("isic2017", synthesize("isic2017", tmp_path / "i", n=3, seed=0).out_dir)
    assert cv2.imread(ham.samples["image_path"][0]).shape == (150, 200, 3)
    assert cv2.imread(isic.samples["image_path"][0]).shape == (256, 256, 3)


@pytest.fixture(scope="module")
def ham(tmp_path_factory):
    root = synthesize("ham10000", tmp_path_factory.mktemp("ham") / "d", n=210, seed=11, image_size="64x48").out_dir
    return load_dataset("ham10000", root)


def test_masks_are_binary_and_cover_the_lesion(ham):
    for _, row in ham.samples.head(20).iterrows():
        mask = cv2.imread(row["mask_path"], cv2.IMREAD_UNCHANGED)
        image = cv2.imread(row["image_path"])
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 255}
        assert 0.02 < (mask > 0).mean() < 0.9
        inside = image[mask > 0].astype(float).mean(axis=0)
        outside = image[mask == 0].astype(float).mean(axis=0)
        assert np.abs(inside - outside).max() > 15  # the lesion differs from the skin around it


def test_metadata_is_plausible_and_lesions_repeat(ham):
    samples = ham.samples
    ages = samples["age"].dropna()
    assert ages.between(5, 85).all() and (ages % 5 == 0).all()
    assert samples["sex"].isin(["female", "male", "unknown"]).all()
    assert samples["lesion_id"].value_counts().max() >= 2
    per_lesion = samples.groupby("lesion_id")
    assert (per_lesion["label"].nunique() == 1).all() and (per_lesion["age"].nunique(dropna=False) == 1).all()
    assert set(ham.class_counts()) == set(ham.class_names) and min(ham.class_counts().values()) >= 2
    from skinkeras.data.ham10000 import SITES

    assert set(samples["site"]) <= set(SITES)


def test_classes_are_learnable_from_simple_colour_features(ham):
    """Nearest class centroid on lesion colour statistics, trained and tested on different lesions."""

    def features(row):
        image = cv2.imread(row["image_path"])[..., ::-1].astype(float)
        mask = cv2.imread(row["mask_path"], cv2.IMREAD_UNCHANGED) > 0
        inside = image[mask]
        return np.concatenate([inside.mean(0), inside.std(0), [mask.mean() * 10]])

    samples = ham.samples
    x = np.stack([features(r) for _, r in samples.iterrows()])
    y = samples["label_index"].to_numpy()
    test = samples["lesion_id"].map(lambda s: int(s[-2:]) % 3 == 0).to_numpy()
    mean, scale = x[~test].mean(0), x[~test].std(0) + 1e-6
    z = (x - mean) / scale
    centroids = np.stack([z[~test & (y == c)].mean(0) for c in range(ham.num_classes)])
    predicted = np.argmin(((z[test, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    recalls = [np.mean(predicted[y[test] == c] == c) for c in range(ham.num_classes) if (y[test] == c).any()]
    assert np.mean(recalls) > 0.7, recalls  # chance is 1/7


def test_cole_model_limits_and_eis_class_signal(tmp_path):
    z = cole_impedance(np.array([1e-3, 1e12]), r0=50e3, r_inf=1e3, tau=1e-5, alpha=0.8)
    np.testing.assert_allclose(z.real, [50e3, 1e3], rtol=1e-3)
    # At the characteristic frequency w * tau = 1 and alpha = 1 the model is (R0 + Rinf) / 2 - j (R0 - Rinf) / 2.
    mid = cole_impedance(1 / (2 * np.pi * 1e-5), r0=3.0, r_inf=1.0, tau=1e-5, alpha=1.0)
    np.testing.assert_allclose(mid, 2.0 - 1.0j, rtol=1e-9)
    rng = np.random.default_rng(0)
    benign = lesion_parameters(rng, "benign")
    assert np.all(np.diff(benign["r0"]) < 0)  # deeper permutations: lower resistance
    table = load_dataset("eis", synthesize("eis", tmp_path / "e", n=60, seed=2, image_fraction=0.5).out_dir)
    samples = table.samples
    assert samples["n_measurements"].between(1, 6).all() and (samples["image_path"] == "").any()
    low_frequency_log_magnitude = []
    for path in samples["eis_path"]:
        spectra = load_spectra(path)
        assert np.isfinite(spectra).all() and np.all(np.abs(spectra) > 0)
        low_frequency_log_magnitude.append(np.log(np.abs(spectra[:, -1, 0])).mean())
    values = np.array(low_frequency_log_magnitude)
    melanoma = samples["label"].to_numpy() == "malignant"
    assert values[melanoma].mean() < values[~melanoma].mean() - 0.2
    assert spectra_to_features(load_spectra(samples["eis_path"][0])).shape[1] == 700
    assert FREQUENCIES_HZ[0] == pytest.approx(1e3) and FREQUENCIES_HZ[-1] == pytest.approx(2.5e6)


@pytest.mark.slow  # a wall-clock bound: fails on a loaded machine, so not in `make test`
def test_six_hundred_ham_images_take_seconds(tmp_path):
    start = time.perf_counter()
    result = synthesize("ham10000", tmp_path / "big", n=600, seed=0)
    elapsed = time.perf_counter() - start
    assert result.n_images == 600 and len(load_dataset("ham10000", result.out_dir)) == 600
    assert elapsed < 20, f"600 images took {elapsed:.1f} s"
