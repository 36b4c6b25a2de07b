"""The lesion-crop stage: largest component, box with margin and clipping, crops, crop_table."""

import dataclasses

import numpy as np
import pytest

from skinkeras.data.registry import load_dataset
from skinkeras.data.synth import synthesize
from skinkeras.errors import SkinkerasError
from skinkeras.segmentation.crop import crop_lesion, crop_table, largest_component, lesion_box


def _mask(shape, *boxes):
    mask = np.zeros(shape, dtype=bool)
    for y0, x0, y1, x1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def test_largest_component_keeps_the_bigger_blob():
    mask = _mask((40, 40), (2, 2, 6, 6), (20, 10, 35, 30))
    kept = largest_component(mask)
    assert kept.sum() == 15 * 20
    assert not kept[2:6, 2:6].any()
    assert not largest_component(np.zeros((5, 5), bool)).any()


def test_lesion_box_of_the_larger_component():
    mask = _mask((40, 40), (2, 2, 6, 6), (20, 10, 30, 30))
    assert lesion_box(mask, margin=0.0) == (20, 10, 30, 30)


def test_lesion_box_margin_is_a_fraction_of_the_box():
    mask = _mask((100, 100), (40, 30, 60, 70))  # 20 high, 40 wide
    assert lesion_box(mask, margin=0.1) == (38, 26, 62, 74)
    assert lesion_box(mask, margin=0.5) == (30, 10, 70, 90)


def test_lesion_box_is_clipped_at_the_borders():
    mask = _mask((50, 60), (0, 50, 10, 60))
    assert lesion_box(mask, margin=0.5) == (0, 45, 15, 60)


def test_lesion_box_empty_mask_is_none():
    assert lesion_box(np.zeros((8, 8), bool)) is None
    with pytest.raises(ValueError, match="margin"):
        lesion_box(np.ones((8, 8), bool), margin=-0.1)


def test_crop_lesion_cuts_the_box_and_falls_back():
    image = np.zeros((60, 80, 3), np.uint8)
    image[20:40, 30:50] = 200  # the "lesion"
    mask = _mask((60, 80), (20, 30, 40, 50))
    crop, found = crop_lesion(image, mask, size=16, margin=0.0)
    assert found and crop.shape == (16, 16, 3) and crop.dtype == np.uint8
    assert crop.min() == 200  # only lesion pixels
    # A mask at half resolution maps onto the same box.
    small = _mask((30, 40), (10, 15, 20, 25))
    crop_small, _ = crop_lesion(image, small, size=16, margin=0.0)
    np.testing.assert_array_equal(crop_small, crop)
    whole, found = crop_lesion(image, np.zeros((60, 80), bool), size=16)
    assert not found and whole.shape == (16, 16, 3)
    assert whole.max() > whole.min()  # the whole image: lesion and background


class _EmptySegmenter:
    """Predicts no lesion anywhere (so every predicted image falls back)."""

    def predict_on_batch(self, batch):
        return np.zeros((*batch.shape[:3], 1), np.float32)


def test_crop_table_writes_outside_the_dataset(tmp_path):
    data = tmp_path / "ham"
    synthesize("ham10000", data, n=12, seed=0, image_size=(64, 48))
    table = load_dataset("ham10000", data)
    assert (table.samples["mask_path"] != "").all()
    samples = table.samples.copy()
    samples.loc[:2, "mask_path"] = ""  # three rows must be predicted
    table = dataclasses.replace(table, samples=samples)
    before = sorted(p.name for p in data.rglob("*"))

    cropped, stats = crop_table(table, tmp_path / "crops", image_size=24, margin=0.1,
                                segmenter=_EmptySegmenter(), segmenter_image_size=32, batch_size=5)
    assert stats == {"images": 12, "given_masks": 9, "predicted_masks": 3, "fallback_whole_image": 3}
    assert sorted(p.name for p in data.rglob("*")) == before  # nothing written into the dataset
    paths = cropped.samples["image_path"].tolist()
    assert all(str(tmp_path / "crops") in p for p in paths)
    assert (cropped.samples["mask_path"] == "").all()
    assert cropped.samples["image_id"].tolist() == table.samples["image_id"].tolist()
    from skinkeras.data.images import read_image_rgb

    assert read_image_rgb(paths[5]).shape == (24, 24, 3)
    assert table.samples["image_path"].iloc[0] != paths[0]  # the input table is untouched


def test_crop_table_errors(tmp_path):
    data = tmp_path / "ham"
    synthesize("ham10000", data, n=6, seed=1, image_size=(64, 48), masks=False)
    table = load_dataset("ham10000", data)
    with pytest.raises(SkinkerasError, match="no segmenter"):
        crop_table(table, tmp_path / "crops", image_size=16)
    with pytest.raises(SkinkerasError, match="dataset folder"):
        crop_table(table, data / "crops", image_size=16, segmenter=_EmptySegmenter(), segmenter_image_size=32)
