"""Preprocessing ops, each run eagerly and inside `tf.data.Dataset.map` (big_vision ops_image_test)."""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from skinkeras.preprocessing.augment import (  # noqa: E402
    AugmentConfig,
    affine_transforms,
    apply_augment_params,
    apply_transforms,
    augment_batch,
    fused_augment_image,
    random_augment_params,
    resize_transforms,
    warp_bilinear_gather,
)
from skinkeras.preprocessing.color import shades_of_gray, shades_of_gray_numpy  # noqa: E402
from skinkeras.preprocessing.crops import (  # noqa: E402
    center_square_crop,
    crop_dark_borders,
    crop_to_mask,
    mask_bounding_box,
    resize,
    shrink_to_fit,
)
from skinkeras.preprocessing.multicrop import grid_offsets, multi_crop, random_crop  # noqa: E402


def run_both(fn, *inputs):
    """Returns fn's outputs eagerly and from inside Dataset.map (as NumPy), after checking they agree."""
    eager = fn(*inputs)
    dataset = tf.data.Dataset.from_tensors(tuple(inputs)).map(lambda *xs: fn(*xs))
    mapped = next(iter(dataset))
    eager_flat = tf.nest.flatten(eager)
    mapped_flat = tf.nest.flatten(mapped)
    for a, b in zip(eager_flat, mapped_flat):
        # 0..255 values: graph and eager kernels may round differently.
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-2)
    return tf.nest.map_structure(np.asarray, eager)


# ---- colour constancy --------------------------------------------------------------------------
def test_shades_of_gray_matches_numpy_oracle():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (17, 23, 3)).astype(np.float32) * np.float32([1.0, 0.7, 0.4])
    out = run_both(shades_of_gray, image)
    np.testing.assert_allclose(out, shades_of_gray_numpy(image), rtol=1e-4, atol=1e-2)
    # Formula written out once more, independently: e_c = mean(I^6)^(1/6), gain = |e| / (sqrt3 e_c).
    e = np.mean(image.astype(np.float64) ** 6, axis=(0, 1)) ** (1 / 6)
    gain = np.linalg.norm(e) / (math.sqrt(3) * e)
    np.testing.assert_allclose(out, np.clip(image * gain, 0, 255), rtol=1e-4, atol=1e-2)


def test_shades_of_gray_turns_colour_cast_flat_image_gray():
    flat = np.tile(np.float32([180, 120, 60]), (8, 9, 1))
    out = run_both(shades_of_gray, flat)
    assert np.allclose(out[..., 0], out[..., 1], atol=1e-3)
    assert np.allclose(out[..., 1], out[..., 2], atol=1e-3)
    # The norm of the illuminant is kept: gray level = |e| / sqrt(3).
    assert out[0, 0, 0] == pytest.approx(np.linalg.norm([180, 120, 60]) / math.sqrt(3), rel=1e-4)


def test_shades_of_gray_batch_and_black_image():
    batch = np.stack([np.zeros((4, 4, 3), np.float32), np.full((4, 4, 3), 300.0, np.float32)])
    out = shades_of_gray(batch).numpy()
    assert np.all(out[0] == 0)  # no illuminant: left unchanged, no NaN
    assert out.max() <= 255.0
    with pytest.raises(ValueError, match="power"):
        shades_of_gray(batch, power=0)


# ---- crops --------------------------------------------------------------------------------------
def test_crop_dark_borders_removes_black_frame():
    image = np.zeros((40, 50, 3), np.uint8)
    image[5:33, 8:45] = 150
    image[15:18, :] = 0  # a dark row inside the image is kept
    out = run_both(crop_dark_borders, image)
    assert out.shape == (28, 37, 3)


def test_crop_dark_borders_circular_vignette_to_disc_box():
    yy, xx = np.mgrid[:100, :120]
    disc = (yy - 50) ** 2 + (xx - 60) ** 2 <= 40**2
    image = np.where(disc[..., None], 200, 0).astype(np.uint8) * np.ones((1, 1, 3), np.uint8)
    out = run_both(crop_dark_borders, image)
    # Disc bounding box is 81 x 81; edge rows with a short chord may fall below the threshold.
    assert 76 <= out.shape[0] <= 81 and 76 <= out.shape[1] <= 81


def test_crop_dark_borders_never_crops_to_nothing():
    image = np.full((10, 12, 3), 3, np.uint8)
    out = run_both(crop_dark_borders, image)
    assert out.shape == (10, 12, 3)


def test_center_square_crop():
    image = np.arange(6 * 10 * 3, dtype=np.float32).reshape(6, 10, 3)
    out = run_both(center_square_crop, image)
    np.testing.assert_array_equal(out, image[:, 2:8])
    tall = np.zeros((9, 4, 3), np.float32)
    assert run_both(center_square_crop, tall).shape == (4, 4, 3)


def test_mask_bounding_box_with_margin_and_clipping():
    mask = np.zeros((50, 60, 1), np.float32)
    mask[10:20, 30:50] = 1  # box 10 x 20
    box, found = run_both(lambda m: mask_bounding_box(m, margin=0.2), mask)
    assert bool(found)
    np.testing.assert_array_equal(box, [8, 26, 22, 54])
    mask2 = np.zeros((50, 60), np.float32)
    mask2[0:10, 50:60] = 1
    box, _ = run_both(lambda m: mask_bounding_box(m, margin=0.5), mask2)
    np.testing.assert_array_equal(box, [0, 45, 15, 60])


def test_crop_to_mask_empty_mask_returns_whole_image():
    image = np.random.default_rng(1).uniform(0, 255, (30, 40, 3)).astype(np.float32)
    empty = np.zeros((30, 40, 1), np.float32)
    crop, mask_crop, found = run_both(lambda i, m: crop_to_mask(i, m, margin=0.1), image, empty)
    assert not bool(found)
    np.testing.assert_array_equal(crop, image)
    assert mask_crop.shape == (30, 40, 1)
    full = empty.copy()
    full[5:15, 10:20] = 1
    crop, mask_crop, found = run_both(lambda i, m: crop_to_mask(i, m, margin=0.0), image, full)
    assert bool(found)
    np.testing.assert_array_equal(crop, image[5:15, 10:20])
    assert mask_crop.min() == 1


def test_resize_image_and_nearest_mask():
    image = np.random.default_rng(2).uniform(0, 255, (15, 20, 3)).astype(np.float32)
    out = run_both(lambda x: resize(x, (32, 24)), image)
    assert out.shape == (32, 24, 3) and out.dtype == np.float32
    mask = (np.random.default_rng(3).uniform(size=(15, 20, 1)) > 0.5).astype(np.float32)
    out = run_both(lambda x: resize(x, 33, method="nearest"), mask)
    assert set(np.unique(out)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="size"):
        resize(image, (0, 4))


# ---- multi-crop -----------------------------------------------------------------------------------
def test_multi_crop_grid_covers_image_in_order():
    image = np.random.default_rng(4).uniform(0, 255, (60, 80, 3)).astype(np.float32)
    crops = run_both(lambda x: multi_crop(x, 32), image)
    assert crops.shape == (36, 32, 32, 3)
    tops = grid_offsets(60, 32, 6).numpy()
    lefts = grid_offsets(80, 32, 6).numpy()
    np.testing.assert_array_equal(tops, np.round(np.linspace(0, 28, 6)).astype(int))
    for index in (0, 7, 20, 35):
        top, left = tops[index // 6], lefts[index % 6]
        np.testing.assert_array_equal(crops[index], image[top : top + 32, left : left + 32])
    covered = np.zeros((60, 80), bool)
    for top in tops:
        for left in lefts:
            covered[top : top + 32, left : left + 32] = True
    assert covered.all()


def test_multi_crop_upsizes_small_image_and_other_grids():
    small = np.ones((20, 30, 3), np.float32)
    crops = multi_crop(small, 24, grid=(2, 3)).numpy()
    assert crops.shape == (6, 24, 24, 3)
    np.testing.assert_allclose(crops, 1.0, atol=1e-5)


def test_random_crop_is_stateless():
    image = np.random.default_rng(5).uniform(0, 255, (40, 50, 3)).astype(np.float32)
    a = run_both(lambda x: random_crop(x, 16, tf.constant([1, 2])), image)
    b = random_crop(image, 16, tf.constant([1, 2])).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (16, 16, 3)


# ---- augmentation ---------------------------------------------------------------------------------
def _numpy_inverse_warp_nearest(image, angle, tx, ty, scale, fx, fy):
    """Oracle: q = c + F R(-a) (p - c - t) / s, nearest neighbour, constant 0 fill."""
    h, w = image.shape[:2]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    out = np.zeros_like(image)
    for y in range(h):
        for x in range(w):
            dx, dy = x - cx - tx, y - cy - ty
            qx = cx + fx * (math.cos(angle) * dx + math.sin(angle) * dy) / scale
            qy = cy + fy * (-math.sin(angle) * dx + math.cos(angle) * dy) / scale
            ix, iy = int(math.floor(qx + 0.5)), int(math.floor(qy + 0.5))
            if 0 <= ix < w and 0 <= iy < h:
                out[y, x] = image[iy, ix]
    return out


def test_affine_transform_matches_numpy_oracle():
    rng = np.random.default_rng(6)
    image = rng.uniform(0, 255, (1, 11, 13, 1)).astype(np.float32)
    params = (0.4, 1.5, -2.0, 1.1, -1.0, 1.0)
    one = lambda v: tf.constant([v], tf.float32)  # noqa: E731
    transforms = affine_transforms(*[one(p) for p in params], 11, 13)
    out = apply_transforms(image, transforms, "nearest", "constant").numpy()[0]
    expected = _numpy_inverse_warp_nearest(image[0], *params)
    # Points exactly half-way between pixels may round either way: allow a handful.
    assert np.mean(out == expected) > 0.95


def test_affine_flip_and_rotation_exact_cases():
    image = np.arange(5 * 7, dtype=np.float32).reshape(1, 5, 7, 1)
    one = lambda v: tf.constant([v], tf.float32)  # noqa: E731
    flip_x = affine_transforms(one(0), one(0), one(0), one(1), one(-1), one(1), 5, 7)
    np.testing.assert_array_equal(apply_transforms(image, flip_x, "nearest").numpy(), image[:, :, ::-1])
    half_turn = affine_transforms(one(math.pi), one(0), one(0), one(1), one(1), one(1), 5, 7)
    rotated = apply_transforms(image, half_turn, "bilinear").numpy()
    np.testing.assert_allclose(rotated, image[:, ::-1, ::-1], atol=1e-3)


def test_augment_batch_joint_mask_and_determinism():
    rng = np.random.default_rng(7)
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    masks = np.zeros((4, 32, 32, 1), np.float32)
    masks[:, 8:24, 10:20] = 1
    # Encode the mask in the image's red channel: with photometric changes off, warped image and
    # mask must still agree wherever the mask is (nearest vs bilinear differ only at edges).
    images[..., 0] = masks[..., 0] * 255
    config = AugmentConfig(brightness=0.0, contrast=0.0, fill_mode="constant")
    seed = tf.constant([3, 4])
    out_images, out_masks = run_both(
        lambda i, m: augment_batch(i, seed, masks=m, config=config), images, masks
    )
    assert set(np.unique(out_masks)) <= {0.0, 1.0}
    agree = np.mean((out_images[..., 0] > 127.5) == (out_masks[..., 0] > 0.5))
    assert agree > 0.97
    assert not np.allclose(out_images, images)  # something happened
    again = augment_batch(images, seed, masks=masks, config=config)
    np.testing.assert_array_equal(again[0].numpy(), out_images)
    other = augment_batch(images, tf.constant([5, 6]), masks=masks, config=config)
    assert not np.allclose(other[0].numpy(), out_images)


def test_augment_batch_photometric_range_and_config_errors():
    images = np.full((3, 8, 8, 3), 128.0, np.float32)
    config = AugmentConfig(
        rotation_degrees=0, shift_fraction=0, zoom_fraction=0, horizontal_flip=False, vertical_flip=False,
        brightness=0.1, contrast=0.2,
    )
    out = augment_batch(images, tf.constant([1, 1]), config=config).numpy()
    assert out.min() >= 128 - 25.5 - 1e-3 and out.max() <= 128 + 25.5 + 1e-3
    # Flat image: contrast keeps it flat, brightness shifts it uniformly per image.
    assert np.allclose(out.std(axis=(1, 2, 3)), 0, atol=1e-3)
    with pytest.raises(ValueError, match="fill_mode"):
        AugmentConfig(fill_mode="mirror")
    with pytest.raises(ValueError, match="zoom_fraction"):
        AugmentConfig(zoom_fraction=1.0)


# ---- fused resize + warp ----------------------------------------------------------------------
def _smooth_image(height, width, seed=0):
    """A smooth RGB test image in 0..255 (a few broad blobs), float32 `[H, W, 3]`."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    for _ in range(6):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        radius = rng.uniform(0.15, 0.4) * max(height, width)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius**2))
        image += blob[..., None] * rng.uniform(40, 120, 3).astype(np.float32)
    return np.clip(image + 20, 0, 255).round().astype(np.float32)


def test_fused_identity_warp_reproduces_resize():
    image = _smooth_image(150, 200)
    identity = {
        "transform": tf.constant([[1.0, 0, 0, 0, 1.0, 0, 0, 0]]),
        "contrast": tf.ones([1]),
        "brightness": tf.zeros([1]),
    }
    config = AugmentConfig(brightness=0, contrast=0)
    for size in ((224, 224), (150, 200), (180, 300)):
        expected = tf.image.resize(image, size).numpy()  # enlarging: what `resize` does
        for dtype in (np.float32, np.uint8):
            fused = run_both(
                lambda x: apply_augment_params(x, identity, config=config, output_size=size),
                image[None].astype(dtype),
            )[0]
            assert fused.shape == size + (3,) and fused.dtype == np.float32
            tolerance = 1e-3 if dtype == np.float32 else 1.0  # uint8 warps may truncate
            np.testing.assert_allclose(fused, expected, atol=tolerance)


def test_fused_resize_warp_matches_resize_then_warp():
    """One resampling pass (decoded 200x150 -> 224x224) vs `resize`, then the warp: same pixels
    within interpolation error, for random parameters (rotation, shift, zoom, flips, photometric)."""
    config = AugmentConfig()
    images = np.stack([_smooth_image(150, 200, seed) for seed in range(8)])
    params = random_augment_params(8, 224, 224, tf.constant([4, 2]), config)
    two_pass = apply_augment_params(resize(images, (224, 224)), params, config=config).numpy()
    for dtype in (np.float32, np.uint8):
        fused = run_both(
            lambda x: apply_augment_params(x, params, config=config, output_size=(224, 224)),
            images.astype(dtype),
        )
        assert fused.shape == two_pass.shape
        assert np.abs(fused - two_pass).mean() < 2.0
        assert np.percentile(np.abs(fused - two_pass), 99) < 8.0
    # Masks follow the image with nearest neighbour and stay binary.
    masks = (images[..., :1] > 100).astype(np.float32)
    fused_images, fused_masks = apply_augment_params(
        images, params, masks=masks, config=config, output_size=(224, 224)
    )
    _, two_pass_masks = apply_augment_params(
        resize(images, (224, 224)), params, masks=resize(masks, (224, 224), method="nearest"), config=config
    )
    assert set(np.unique(fused_masks.numpy())) <= {0.0, 1.0}
    assert np.mean(fused_masks.numpy() == two_pass_masks.numpy()) > 0.98


def test_shrink_to_fit_only_shrinks_and_keeps_dtype():
    small = tf.constant(_smooth_image(150, 200).astype(np.uint8))
    np.testing.assert_array_equal(shrink_to_fit(small, (224, 224)), small)
    large = tf.constant(_smooth_image(450, 600).astype(np.uint8))
    out = run_both(lambda x: shrink_to_fit(x, (224, 224)), large)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    expected = resize(large, (224, 224)).numpy()
    np.testing.assert_allclose(out, expected, atol=0.51)
    wide = shrink_to_fit(tf.zeros([100, 300, 3]), (224, 224))  # larger in one dimension only
    assert tuple(wide.shape) == (224, 224, 3)


@pytest.mark.parametrize("fill_mode", ["reflect", "nearest"])
def test_gather_warp_matches_the_op(fill_mode):
    rng = np.random.default_rng(8)
    images = rng.uniform(0, 255, (3, 15, 20, 3)).astype(np.float32)
    config = AugmentConfig(shift_fraction=0.5, zoom_fraction=0.5)  # points far outside too
    params = random_augment_params(3, 24, 30, tf.constant([2, 9]), config)
    transforms = resize_transforms(params["transform"], (15, 20), (24, 30))
    expected = apply_transforms(images, transforms, "bilinear", fill_mode, output_size=(24, 30)).numpy()
    for dtype in (np.float32, np.uint8):
        out = run_both(
            lambda x: warp_bilinear_gather(x, transforms, (24, 30), fill_mode), images.astype(dtype)
        )
        reference = expected if dtype == np.float32 else apply_transforms(
            images.astype(np.uint8).astype(np.float32), transforms, "bilinear", fill_mode,
            output_size=(24, 30),
        ).numpy()
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, reference, atol=1e-3)


@pytest.mark.parametrize("size", [(150, 200), (31, 17), (224, 224)])
def test_fused_augment_image_xla_matches_the_op_path(size):
    """The XLA-compiled gather warp + photometric of one image (padded to a fixed canvas) gives
    what `apply_augment_params(..., output_size=...)` gives with the op."""
    config = AugmentConfig()
    params = random_augment_params(2, 224, 224, tf.constant([6, 1]), config)
    for i, dtype in enumerate((np.uint8, np.float32)):
        image = _smooth_image(*size, seed=i).astype(dtype)
        one = {key: value[i] for key, value in params.items()}
        out = run_both(lambda x: fused_augment_image(x, one, (224, 224), config), image)
        expected = apply_augment_params(
            image[None], {key: value[i : i + 1] for key, value in params.items()}, config=config,
            output_size=(224, 224),
        ).numpy()[0]
        assert out.shape == (224, 224, 3) and out.dtype == np.float32
        np.testing.assert_allclose(out, expected, atol=1e-2)
