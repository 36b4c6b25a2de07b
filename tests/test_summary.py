"""Image checks and `summarize`: truncated / corrupt files, grayscale, RGBA and 16-bit PNGs."""

from __future__ import annotations

import csv
import os
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from skinkeras.data import load_dataset
from skinkeras.data.images import check_images, read_image_rgb
from skinkeras.data.summary import format_summary, summarize
from skinkeras.data.synth import synthesize
from skinkeras.data.table import CONVERTED, MISSING_FILE, UNKNOWN_LABEL, UNREADABLE
from skinkeras.errors import DataError


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """The same 40x30 picture stored in every variant the checks must recognise."""
    folder = tmp_path_factory.mktemp("variants")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    gray = rgb[..., 0]
    Image.fromarray(rgb).save(folder / "rgb.png")
    Image.fromarray(rgb).save(folder / "rgb.jpg", quality=95)
    Image.fromarray(gray).save(folder / "gray.png")
    Image.fromarray(gray).save(folder / "gray.jpg")
    Image.fromarray(np.dstack([rgb, np.full_like(gray, 128)])).save(folder / "rgba.png")
    Image.fromarray(np.dstack([gray, gray])).save(folder / "gray_alpha.png")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray(gray > 127).save(folder / "bilevel.png")
    cv2.imwrite(str(folder / "gray16.png"), gray.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "rgb16.png"), (rgb[..., ::-1].astype(np.uint16) * 257))
    data = (folder / "rgb.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "short_tail.jpg").write_bytes(data[:-2])  # only the end-of-image marker lost
    png = (folder / "rgb.png").read_bytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "text.jpg").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    return folder, rgb, gray


def test_read_image_rgb_converts_every_variant_to_uint8_rgb(variants):
    folder, rgb, gray = variants
    expected_gray = np.repeat(gray[..., None], 3, axis=2)
    for name, expected in [("rgb.png", rgb), ("rgba.png", rgb), ("rgb16.png", rgb), ("gray.png", expected_gray),
                           ("gray_alpha.png", expected_gray), ("gray16.png", expected_gray)]:
        image = read_image_rgb(folder / name)
        assert image.dtype == np.uint8 and image.shape == (30, 40, 3), name
        np.testing.assert_array_equal(image, expected, err_msg=name)
    jpeg = read_image_rgb(folder / "rgb.jpg")  # lossy, but really RGB (not BGR)
    pil = np.asarray(Image.open(folder / "rgb.jpg").convert("RGB"))
    assert np.abs(jpeg.astype(int) - pil.astype(int)).mean() < 2


@pytest.mark.parametrize("name", ["truncated.jpg", "short_tail.jpg", "truncated.png", "text.jpg", "empty.png", "gone.jpg"])
def test_read_image_rgb_raises_a_data_error_naming_the_file(variants, name):
    folder, _, _ = variants
    with pytest.raises(DataError, match=name):
        read_image_rgb(folder / name)


def test_pillow_agrees_the_truncated_jpeg_is_truncated(variants):
    """The check must not rely on a decoder that only warns: Pillow raises on the same file."""
    folder, _, _ = variants
    with pytest.raises(OSError, match="truncated"):
        with Image.open(folder / "truncated.jpg") as image:
            image.load()


def test_check_images_reports_unreadable_and_converted(variants):
    folder, _, _ = variants
    names = ["palette.png", "bilevel.png", "rgb.png", "rgb.jpg", "gray.png", "gray.jpg", "rgba.png", "gray_alpha.png", "gray16.png", "rgb16.png",
             "truncated.jpg", "short_tail.jpg", "truncated.png", "text.jpg", "empty.png", "gone.jpg"]
    problems = {p.image_id: p for p in check_images([folder / n for n in names], image_ids=names)}
    assert "rgb.png" not in problems and "rgb.jpg" not in problems
    for name in ("truncated.jpg", "short_tail.jpg", "truncated.png", "text.jpg", "empty.png", "gone.jpg"):
        assert problems[name].kind == UNREADABLE and problems[name].excludes, name
    details = {
        "gray.png": "grayscale", "gray.jpg": "grayscale", "rgba.png": "RGBA", "gray_alpha.png": "grayscale+alpha",
        "gray16.png": "16-bit grayscale", "rgb16.png": "16-bit", "palette.png": "palette", "bilevel.png": "1-bit grayscale",
    }
    for name, text in details.items():
        assert problems[name].kind == CONVERTED and not problems[name].excludes, name
        assert text in problems[name].detail, problems[name].detail
    assert len(problems) == len(details) + 6


def _break_copy(source_root, images_of, tmp_path, csv_name, id_column, label_column, bad_label):
    """Copy a dataset with symlinked images, then truncate one image, delete one, relabel one."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for entry in os.scandir(source_root):
        target = copy / entry.name
        if entry.is_dir():
            target.mkdir()
            for item in os.scandir(entry.path):
                os.symlink(item.path, target / item.name)
        else:
            shutil.copy(entry.path, target)
    with open(copy / csv_name, newline="") as handle:
        rows = list(csv.DictReader(handle))
    truncated_id, missing_id, relabelled_id = (rows[i][id_column] for i in (0, 1, 2))
    truncated = images_of(copy, truncated_id)
    data = truncated.read_bytes()
    truncated.unlink()  # replace the symlink, never touch the shared original
    truncated.write_bytes(data[: len(data) // 2])
    images_of(copy, missing_id).unlink()
    rows[2][label_column] = bad_label
    with open(copy / csv_name, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return copy, truncated_id, missing_id, relabelled_id


def _assert_three_problems(summary, n_rows, truncated_id, missing_id, relabelled_id):
    problems = {kind: [p["image_id"] for p in items] for kind, items in summary["problems"].items()}
    assert problems == {UNKNOWN_LABEL: [relabelled_id], MISSING_FILE: [missing_id], UNREADABLE: [truncated_id]}
    assert summary["n_images"] == n_rows - 2 and summary["n_usable"] == n_rows - 3
    assert summary["n_excluded"] == 3
    text = format_summary(summary)
    for image_id in (truncated_id, missing_id, relabelled_id):
        assert image_id in text


def _ham_image(root, image_id):
    for folder in root.iterdir():
        if folder.is_dir() and (folder / f"{image_id}.jpg").exists():
            return folder / f"{image_id}.jpg"
    raise FileNotFoundError(image_id)


def test_summary_reports_truncated_missing_and_unknown_label_on_generated_data(tmp_path):
    source = synthesize("ham10000", tmp_path / "source", n=30, seed=1, image_size="48x36").out_dir
    copy, *ids = _break_copy(source, _ham_image, tmp_path, "HAM10000_metadata.csv", "image_id", "dx", "melanoma")
    summary = summarize(load_dataset("ham10000", copy))
    _assert_three_problems(summary, 30, *ids)
    assert summary["generated"] is True
    assert summary["n_lesions"] <= 30 and summary["n_with_mask"] == 28
    assert summary["image_size"]["width"] == {"min": 48, "median": 48.0, "max": 48}
    # Without decoding, the truncated file is not found (it has a valid header).
    quick = summarize(load_dataset("ham10000", copy), check_images=False)
    assert UNREADABLE not in quick["problems"] and quick["image_size"]["n_measured"] >= 27


def test_summary_of_a_clean_generated_dataset(tmp_path):
    root = synthesize("isic2017", tmp_path / "isic", n=20, seed=0, image_size="40x40").out_dir
    summary = summarize(load_dataset("isic2017", root))
    assert summary["problems"] == {} and summary["n_usable"] == 20
    assert sum(summary["class_counts"].values()) == 20 == sum(summary["split_counts"].values())
    assert 0 < summary["metadata"]["age_known"] <= 1 and summary["metadata"]["site_known"] == 0
    assert summary["image_size"]["height"]["max"] == 40
    assert "problems  none" in format_summary(summary)


@pytest.mark.real_data
def test_summary_finds_three_problems_in_a_broken_copy_of_real_ham10000(ham10000_root, tmp_path):
    copy, *ids = _break_copy(ham10000_root, _ham_image, tmp_path, "HAM10000_metadata.csv", "image_id", "dx", "melanoma")
    summary = summarize(load_dataset("ham10000", copy))
    _assert_three_problems(summary, 7993, *ids)
    assert summary["generated"] is False


@pytest.mark.real_data
def test_summary_finds_three_problems_in_a_broken_copy_of_real_isic2017(isic2017_root, tmp_path):
    def image_of(root, image_id):
        return root / "ISIC-2017_Training_Data" / f"{image_id}.jpg"

    copy, *ids = _break_copy(
        isic2017_root, image_of, tmp_path, "ISIC-2017_Training_Part3_GroundTruth.csv", "image_id", "melanoma", "2.0"
    )
    summary = summarize(load_dataset("isic2017", copy))
    _assert_three_problems(summary, 2150, *ids)


@pytest.mark.real_data
def test_summary_of_real_ham10000(ham10000_root):
    summary = summarize(load_dataset("ham10000", ham10000_root))
    assert summary["n_images"] == 7993 and summary["n_lesions"] == 5984 and summary["problems"] == {}
    assert summary["image_size"]["width"]["max"] == 200 and summary["image_size"]["height"]["max"] == 150
    assert summary["n_with_mask"] == 7993
