"""tf.data pipelines on a small generated SampleTable (PNG / JPEG files written with cv2)."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pandas as pd
import pytest

tf = pytest.importorskip("tensorflow")
cv2 = pytest.importorskip("cv2")

from skinkeras.data.metadata import MetadataEncoding  # noqa: E402
from skinkeras.data.pipeline import (  # noqa: E402
    make_classification_dataset,
    make_multicrop_dataset,
    make_segmentation_dataset,
)
from skinkeras.data.table import SampleTable  # noqa: E402

CLASSES = ("a", "b", "c")


def _write_table(tmp_path, n=12, truncated=0, sixteen_bit=False, size=(30, 40)):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        h, w = size
        bgr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        mask[5 + i % 5 : 20, 10 : 25 + i % 7] = 255
        if sixteen_bit and i == 0:
            path = tmp_path / f"img{i}.png"
            cv2.imwrite(str(path), bgr.astype(np.uint16) * 257)
        else:
            path = tmp_path / f"img{i}.{'png' if i % 2 else 'jpg'}"
            cv2.imwrite(str(path), bgr)
        mask_path = tmp_path / f"img{i}_segmentation.png"
        cv2.imwrite(str(mask_path), mask)
        label_index = i % 3 if i >= 3 else 0  # class 0 is the most common one
        rows.append(
            {
                "image_id": f"img{i}",
                "image_path": str(path),
                "label": CLASSES[label_index],
                "label_index": label_index,
                "lesion_id": f"les{i}",
                "age": float("nan") if i == 1 else 30.0 + i,
                "sex": ("female", "male", "unknown")[i % 3],
                "site": ("back", "face", "unknown", "nowhere")[i % 4],
                "mask_path": str(mask_path) if i != 2 else "",
                "split": "",
            }
        )
    for j in range(truncated):
        path = tmp_path / f"bad{j}.jpg"
        data = (tmp_path / "img0.jpg").read_bytes() if (tmp_path / "img0.jpg").exists() else b""
        path.write_bytes(data[: len(data) // 2])
        rows.append(dict(rows[0], image_id=f"bad{j}", image_path=str(path)))
    return SampleTable("synthetic", tmp_path, pd.DataFrame(rows), CLASSES)


def test_classification_element_contract_training(tmp_path):
    table = _write_table(tmp_path)
    enc = MetadataEncoding.fit(table.samples)
    ds = make_classification_dataset(table, image_size=24, batch_size=4, training=True, metadata=enc, seed=1)
    batches = list(ds)
    assert len(batches) == 3  # 12 images, drop_remainder in training
    features, label = batches[0]
    assert set(features) == {"image", "metadata"}
    assert features["image"].shape == (4, 24, 24, 3) and features["image"].dtype == tf.float32
    assert features["metadata"].shape == (4, enc.num_features)
    assert label.shape == (4, 3) and label.dtype == tf.float32
    images = np.concatenate([b[0]["image"].numpy() for b in batches])
    assert images.min() >= 0 and images.max() <= 255 and images.max() > 50
    np.testing.assert_allclose(np.concatenate([b[1].numpy() for b in batches]).sum(axis=1), 1)


def test_evaluation_is_deterministic_ordered_and_unaugmented(tmp_path):
    table = _write_table(tmp_path, n=7)
    enc = MetadataEncoding.fit(table.samples)
    kwargs = dict(image_size=(20, 28), batch_size=3, training=False, metadata=enc, label_mode="index")
    first = list(make_classification_dataset(table, **kwargs))
    second = list(make_classification_dataset(table, **kwargs))
    assert [b[1].shape[0] for b in first] == [3, 3, 1]  # no drop_remainder at evaluation
    labels = np.concatenate([b[1].numpy() for b in first])
    np.testing.assert_array_equal(labels, table.samples["label_index"].to_numpy())
    assert first[0][1].dtype == tf.int32
    for (fa, _), (fb, _) in zip(first, second):
        np.testing.assert_array_equal(fa["image"].numpy(), fb["image"].numpy())
    # Evaluation metadata has no random dropout: it equals the NumPy encoding.
    metadata = np.concatenate([b[0]["metadata"].numpy() for b in first])
    np.testing.assert_allclose(metadata, enc.encode_frame(table.samples), atol=1e-6)
    # No augmentation: the image equals the plain resized file.
    bgr = cv2.imread(table.samples["image_path"][1])
    expected = tf.image.resize(bgr[..., ::-1].astype(np.float32), (20, 28), antialias=True).numpy()
    np.testing.assert_allclose(first[0][0]["image"].numpy()[1], expected, atol=1e-3)


def test_training_seed_reproducible_and_epochs_differ(tmp_path):
    table = _write_table(tmp_path, n=8)
    make = lambda seed: make_classification_dataset(  # noqa: E731
        table, image_size=16, batch_size=4, training=True, seed=seed
    )
    ds = make(3)
    epoch1 = np.concatenate([f["image"].numpy() for f, _ in ds])
    epoch2 = np.concatenate([f["image"].numpy() for f, _ in ds])
    again = np.concatenate([f["image"].numpy() for f, _ in make(3)])
    np.testing.assert_allclose(epoch1, again, atol=1e-3)
    assert not np.allclose(epoch1, epoch2)


def _write_smooth_images(table, size=(30, 40)):
    """Overwrites the table's images with smooth ones (interpolation differences stay small)."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    for i, path in enumerate(table.samples["image_path"]):
        rgb = np.stack(
            [128 + 100 * np.sin((x + 3 * i) / 7.0), 128 + 100 * np.cos(y / 5.0), 60 + 2 * x + y], -1
        )
        cv2.imwrite(path, np.clip(rgb, 0, 255).astype(np.uint8)[..., ::-1])


@pytest.mark.parametrize("cache", [None, "memory"])
def test_fused_resize_matches_resize_then_warp(tmp_path, cache):
    """crop="resize" in training warps the decoded image straight to the output size (one
    resampling pass); `fused_resize=False` resizes, then warps. Same draws, same pixels within
    interpolation error; the same seed gives the same batches."""
    table = _write_table(tmp_path, n=8)
    _write_smooth_images(table)
    make = lambda fused: make_classification_dataset(  # noqa: E731
        table, image_size=(48, 56), batch_size=4, training=True, seed=5, fused_resize=fused,
        cache=cache, label_mode="index",
    )
    fused = [(f["image"].numpy(), lab.numpy()) for f, lab in make(True)]
    two_pass = [(f["image"].numpy(), lab.numpy()) for f, lab in make(False)]
    again = [(f["image"].numpy(), lab.numpy()) for f, lab in make(True)]
    for (fi, fl), (ti, tl), (ai, al) in zip(fused, two_pass, again):
        np.testing.assert_array_equal(fl, tl)
        np.testing.assert_array_equal(fi, ai)
        assert fi.shape == (4, 48, 56, 3) and fi.dtype == np.float32
        assert np.abs(fi - ti).mean() < 2.0
    # Larger than the output: shrunk with antialiasing first, then warped; still the same result.
    shrunk = [f["image"].numpy() for f, _ in make_classification_dataset(
        table, image_size=16, batch_size=4, training=True, seed=5, cache=cache)]
    reference = [f["image"].numpy() for f, _ in make_classification_dataset(
        table, image_size=16, batch_size=4, training=True, seed=5, cache=cache, fused_resize=False)]
    for a, b in zip(shrunk, reference):
        assert np.abs(a - b).mean() < 2.0


@pytest.mark.parametrize("crop", ["resize", "center_square", "random", "mask"])
@pytest.mark.parametrize("augment_on", ["batch", "image"])
def test_crop_modes_and_options(tmp_path, crop, augment_on):
    table = _write_table(tmp_path, n=4)
    ds = make_classification_dataset(
        table, image_size=16, batch_size=2, training=True, crop=crop, color_constancy=True,
        remove_dark_borders=True, augment_on=augment_on, cache="memory",
    )
    shapes = [f["image"].shape for f, _ in ds]
    assert shapes == [(2, 16, 16, 3)] * 2


@pytest.mark.parametrize("global_seed", [None, 0])
def test_balanced_sampling_evens_classes(tmp_path, global_seed):
    if global_seed is not None:  # training runs set one; passes must still differ
        keras.utils.set_random_seed(global_seed)
    table = _write_table(tmp_path, n=12)  # class counts 5, 3, 4... uneven
    ds = make_classification_dataset(
        table, image_size=8, batch_size=6, training=True, balanced_sampling=True, augment=False,
        label_mode="index", seed=2,
    )
    assert sum(int(lab.shape[0]) for _, lab in ds) == 12  # an epoch is len(table) samples
    labels = np.concatenate([lab.numpy() for _, lab in ds.repeat(40)])
    assert len(labels) == 40 * 12
    shares = np.bincount(labels, minlength=3) / len(labels)
    np.testing.assert_allclose(shares, 1 / 3, atol=0.05)


def test_unreadable_images_are_skipped_and_logged(tmp_path, caplog):
    table = _write_table(tmp_path, n=6, truncated=2)
    with caplog.at_level(logging.WARNING, logger="skinkeras.data.pipeline"):
        ds = make_classification_dataset(table, image_size=8, batch_size=2, training=True, label_mode="index")
        count = sum(int(lab.shape[0]) for _, lab in ds)
    assert count == 6
    assert "skipped 2 unreadable images: bad0, bad1" in caplog.text


def test_unreadable_images_safety_net_without_precheck(tmp_path):
    table = _write_table(tmp_path, n=6, truncated=1)
    ds = make_classification_dataset(
        table, image_size=8, batch_size=1, training=False, check_images=False, label_mode="index"
    )
    assert sum(1 for _ in ds) == 6  # the truncated JPEG fails to decode and is skipped, no crash


def test_sixteen_bit_png_is_reduced_to_eight_bit(tmp_path):
    table = _write_table(tmp_path, n=3, sixteen_bit=True)
    ds = make_classification_dataset(table, image_size=(30, 40), batch_size=3, training=False)
    image = next(iter(ds))[0]["image"].numpy()[0]
    bgr = cv2.imread(table.samples["image_path"][0], cv2.IMREAD_UNCHANGED)
    assert bgr.dtype == np.uint16
    np.testing.assert_allclose(image, bgr[..., ::-1] / 257.0, atol=1.0)


def test_segmentation_dataset_joint_transform(tmp_path):
    table = _write_table(tmp_path, n=6)
    # Make the image's red channel equal to the mask so alignment can be checked after warping.
    for path, mask_path in zip(table.samples["image_path"], table.samples["mask_path"]):
        if mask_path:
            mask = cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE)
            image = np.zeros(mask.shape + (3,), np.uint8)
            image[..., 2] = mask  # BGR: red channel
            cv2.imwrite(path, image)
    table.samples = table.samples[table.samples["image_path"].str.endswith(".png")].reset_index(drop=True)
    from skinkeras.preprocessing.augment import AugmentConfig

    config = AugmentConfig(brightness=0, contrast=0)
    ds = make_segmentation_dataset(table, image_size=32, batch_size=3, training=True, augment_config=config)
    (batch,) = list(ds)
    assert set(batch) == {"image", "mask"}
    assert batch["image"].shape == (3, 32, 32, 3) and batch["mask"].shape == (3, 32, 32, 1)
    mask = batch["mask"].numpy()
    assert set(np.unique(mask)) <= {0.0, 1.0} and mask.sum() > 0
    agree = np.mean((batch["image"].numpy()[..., 0] > 127.5) == (mask[..., 0] > 0.5))
    assert agree > 0.95


def test_segmentation_skips_rows_without_mask(tmp_path, caplog):
    table = _write_table(tmp_path, n=4)  # img2 has no mask
    with caplog.at_level(logging.WARNING, logger="skinkeras.data.pipeline"):
        ds = make_segmentation_dataset(table, image_size=8, batch_size=4, training=False)
        (batch,) = list(ds)
    assert batch["image"].shape[0] == 3
    assert "without a mask: img2" in caplog.text


def test_multicrop_dataset(tmp_path):
    table = _write_table(tmp_path, n=2, size=(40, 50))
    enc = MetadataEncoding.fit(table.samples)
    ds = make_multicrop_dataset(table, crop_size=24, metadata=enc)
    features, label = next(iter(ds))
    assert features["image"].shape == (36, 24, 24, 3)
    assert features["metadata"].shape == (36, enc.num_features)
    assert label.shape == (3,)


def test_argument_errors(tmp_path):
    table = _write_table(tmp_path, n=2)
    with pytest.raises(ValueError, match="crop"):
        make_classification_dataset(table, image_size=8, batch_size=2, training=True, crop="zoom")
    with pytest.raises(ValueError, match="batch_size"):
        make_classification_dataset(table, image_size=8, batch_size=0, training=True)


@pytest.mark.real_data
def test_real_ham10000_classification_and_segmentation(ham10000_root):
    from skinkeras.data.registry import load_dataset

    table = load_dataset("ham10000", ham10000_root)
    table = table.subset(table.samples.index[:64])
    enc = MetadataEncoding.fit(table.samples)
    ds = make_classification_dataset(
        table, image_size=64, batch_size=16, training=True, metadata=enc, crop="mask", color_constancy=True,
        remove_dark_borders=True,
    )
    batches = list(ds)
    assert len(batches) == 4
    features, label = batches[0]
    assert features["image"].shape == (16, 64, 64, 3) and features["metadata"].shape == (16, 20)
    assert label.shape == (16, 7)
    seg = list(make_segmentation_dataset(table, image_size=64, batch_size=16, training=True))
    assert len(seg) == 4
    coverage = np.mean([b["mask"].numpy().mean() for b in seg])
    assert 0.02 < coverage < 0.98  # real lesions: neither empty nor the whole image


@pytest.mark.real_data
def test_real_ham10000_fused_resize_close_to_two_passes(ham10000_root):
    from skinkeras.data.registry import load_dataset

    table = load_dataset("ham10000", ham10000_root)
    table = table.subset(table.samples.index[:32])
    make = lambda fused: make_classification_dataset(  # noqa: E731
        table, image_size=224, batch_size=16, training=True, seed=7, fused_resize=fused
    )
    for (a, _), (b, _) in zip(make(True), make(False)):
        diff = np.abs(a["image"].numpy() - b["image"].numpy())
        assert diff.mean() < 2.0


def test_file_cache_and_balanced_with_cache(tmp_path):
    table = _write_table(tmp_path, n=6)
    cache_prefix = tmp_path / "cache" / "train"
    cache_prefix.parent.mkdir()
    ds = make_classification_dataset(
        table, image_size=8, batch_size=2, training=True, cache=str(cache_prefix), label_mode="index"
    )
    first = sorted(np.concatenate([lab.numpy() for _, lab in ds]).tolist())
    second = sorted(np.concatenate([lab.numpy() for _, lab in ds]).tolist())
    assert first == second == sorted(table.samples["label_index"].tolist())
    assert any(p.name.startswith("train") for p in cache_prefix.parent.iterdir())
    balanced = make_classification_dataset(
        table, image_size=8, batch_size=2, training=True, cache="memory", balanced_sampling=True
    )
    assert sum(int(lab.shape[0]) for _, lab in balanced) == 6
