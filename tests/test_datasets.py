"""Dataset loaders: real layouts, generated layouts, and every kind of bad input."""

from __future__ import annotations

import csv
import math
import shutil
import time

import numpy as np
import pytest

from skinkeras.data import list_datasets, load_dataset, register_dataset
from skinkeras.data import ham10000 as ham
from skinkeras.data.derm7pt import DIAGNOSIS_GROUPS
from skinkeras.data.registry import get_dataset
from skinkeras.data.synth import synthesize
from skinkeras.data.table import BAD_AGE, COLUMNS, DUPLICATE_ID, MISSING_FILE, UNKNOWN_LABEL, UNREADABLE
from skinkeras.errors import DataError, SkinkerasError

HAM_HEADER = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One small generated folder per layout (read-only for the tests)."""
    base = tmp_path_factory.mktemp("generated")
    sizes = {"ham10000": 40, "isic2017": 24, "derm7pt": 15, "eis": 20, "folder": 12}
    return {name: synthesize(name, base / name, n=n, seed=3, image_size="64x48").out_dir for name, n in sizes.items()}


def _kinds(table, image_id):
    return {p.kind for p in table.problems if p.image_id == image_id}


# --- registry -------------------------------------------------------------------------------------

def test_registry_lists_builtins_and_rejects_unknown_names():
    assert set(list_datasets()) >= {"ham10000", "isic2017", "derm7pt", "eis", "folder"}
    with pytest.raises(ValueError, match="valid names: .*ham10000"):
        get_dataset("ham1000")
    with pytest.raises(SkinkerasError, match="isic2017"):
        load_dataset("nope", "/tmp")


def test_register_dataset_adds_a_loader_and_refuses_a_clash():
    @register_dataset("test_only_dataset")
    def loader(root, scale=1):
        return ("loaded", root, scale)

    assert load_dataset("test_only_dataset", "x", scale=2) == ("loaded", "x", 2)
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("test_only_dataset")(lambda root: None)


# --- generated layouts ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ham10000", "isic2017", "derm7pt", "eis", "folder"])
def test_every_generated_layout_loads_with_its_loader(generated, name):
    table = load_dataset(name, generated[name])
    assert table.name == name
    assert len(table) > 0 and table.problems == []
    assert list(table.samples.columns[: len(COLUMNS)]) == list(COLUMNS)
    samples = table.samples
    assert samples["image_id"].is_unique
    assert (samples["label"].map(table.class_names.index) == samples["label_index"]).all()
    assert set(samples["sex"]) <= {"female", "male", "unknown"}
    assert (samples["site"] == samples["site"].str.lower()).all()
    with_image = samples["image_path"] != ""
    assert all(p.startswith("/") for p in samples.loc[with_image, "image_path"])
    if name != "eis":
        assert with_image.all()


def test_generated_ham10000_has_groups_masks_and_two_image_folders(generated):
    table = load_dataset("ham10000", generated["ham10000"])
    assert len(table) == 40
    assert table.samples["lesion_id"].nunique() < 40  # some lesions have several images
    assert (table.samples["mask_path"] != "").all()
    folders = {p.split("/")[-2] for p in table.samples["image_path"]}
    assert folders == {"HAM10000_images_part_1", "HAM10000_images_part_2"}
    assert set(table.samples["dx_type"]) <= set(ham.DX_TYPES)
    assert table.class_names == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def test_isic2017_split_selection(generated):
    everything = load_dataset("isic2017", generated["isic2017"])
    assert set(everything.samples["split"]) == {"train", "val", "test"}
    assert (everything.samples["lesion_id"] == everything.samples["image_id"]).all()
    only = load_dataset("isic2017", generated["isic2017"], splits=["train", "validation"])
    assert set(only.samples["split"]) == {"train", "val"}
    assert len(only) == (everything.samples["split"] != "test").sum()
    with pytest.raises(DataError, match="unknown ISIC 2017 split"):
        load_dataset("isic2017", generated["isic2017"], splits=["holdout"])


def test_isic2017_missing_split_names_the_expected_csv(generated, tmp_path):
    copy = tmp_path / "isic"
    shutil.copytree(generated["isic2017"], copy)
    (copy / "ISIC-2017_Test_v2_Part3_GroundTruth.csv").unlink()
    assert set(load_dataset("isic2017", copy).samples["split"]) == {"train", "val"}
    with pytest.raises(DataError, match="ISIC-2017_Test_v2_Part3_GroundTruth.csv"):
        load_dataset("isic2017", copy, splits="test")


@pytest.mark.parametrize("word", ["Test_v2", "Test"])
def test_isic2017_test_set_as_released_without_metadata(generated, tmp_path, word):
    """The official test set is ISIC-2017_Test_v2_* with no metadata file; the un-suffixed names
    (older copies) are read too."""
    copy = tmp_path / "isic"
    shutil.copytree(generated["isic2017"], copy)
    for path in sorted(copy.glob("ISIC-2017_Test_v2*")):
        path.rename(path.with_name(path.name.replace("Test_v2", word)))
    (copy / f"ISIC-2017_{word}_Data_metadata.csv").unlink()
    table = load_dataset("isic2017", copy)
    test = table.samples[table.samples["split"] == "test"]
    assert len(test) > 0 and all(f"ISIC-2017_{word}_Data" in p for p in test["image_path"])
    assert test["age"].isna().all() and (test["sex"] == "unknown").all()
    assert not [p for p in table.problems if p.excludes]


def test_derm7pt_pairs_groups_and_official_split(generated):
    table = load_dataset("derm7pt", generated["derm7pt"])
    samples = table.samples
    assert table.class_names == ("BCC", "NEV", "MEL", "MISC", "SK")
    assert (samples["clinical_path"] != "").all() and (samples["clinical_path"] != samples["image_path"]).all()
    assert samples["age"].isna().all()
    assert set(samples["split"]) == {"train", "val", "test"}
    assert samples["diagnosis"].str.lower().map(DIAGNOSIS_GROUPS).eq(samples["label"]).all()


def test_eis_measurement_counts_and_features(generated):
    from skinkeras.data.eis import load_spectra, spectra_to_features

    table = load_dataset("eis", generated["eis"])
    row = table.samples.iloc[0]
    spectra = load_spectra(row["eis_path"])
    assert spectra.shape == (row["n_measurements"], 10, 35) and spectra.dtype == np.complex64
    features = spectra_to_features(spectra)
    assert features.shape == (len(spectra), 700)
    np.testing.assert_allclose(features[:, :350], np.abs(spectra.reshape(len(spectra), -1)), rtol=1e-6)
    np.testing.assert_allclose(features[:, 350:], np.angle(spectra.reshape(len(spectra), -1)), rtol=1e-5)
    assert table.class_names == ("benign", "malignant")
    assert set(table.samples["diagnosis"]) <= {"nevus", "melanoma"}


def test_eis_bad_and_missing_spectra_are_excluded(generated, tmp_path):
    copy = tmp_path / "eis"
    shutil.copytree(generated["eis"], copy)
    table = load_dataset("eis", copy)
    first, second = table.samples["image_id"].iloc[:2]
    (copy / "spectra" / f"{first}.npy").unlink()
    np.save(copy / "spectra" / f"{second}.npy", np.zeros((2, 10, 34), np.complex64))
    broken = load_dataset("eis", copy)
    assert len(broken) == len(table) - 2
    assert _kinds(broken, first) == {MISSING_FILE} and _kinds(broken, second) == {UNREADABLE}


def test_folder_loader_ids_paths_and_given_classes(generated, tmp_path):
    table = load_dataset("folder", generated["folder"])
    assert table.class_names == tuple(sorted(table.class_names))
    root = tmp_path / "mine"
    (root / "deep" / "er").mkdir(parents=True)
    first = table.samples.iloc[0]
    shutil.copy(first["image_path"], root / "deep" / "er" / "abc.jpg")
    shutil.copy(first["image_path"], root / "x.jpg")
    with open(root / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(
            [["image", "label", "age"], ["abc", "benign", "40"], ["x.jpg", "malignant", ""], ["gone.jpg", "benign", "3"]]
        )
    mine = load_dataset("folder", root, class_names="benign,malignant,other")
    assert mine.class_names == ("benign", "malignant", "other")
    assert list(mine.samples["image_id"]) == ["abc", "x"]
    assert mine.samples["image_path"].iloc[0].endswith("deep/er/abc.jpg")
    assert _kinds(mine, "gone") == {MISSING_FILE}
    assert (mine.samples["lesion_id"] == mine.samples["image_id"]).all()


# --- bad input ------------------------------------------------------------------------------------

def _ham_copy(generated, tmp_path, rows_edit):
    """A copy of the generated HAM10000 folder whose CSV rows pass through `rows_edit`."""
    copy = tmp_path / "ham"
    shutil.copytree(generated["ham10000"], copy)
    with open(copy / ham.METADATA_CSV, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    body = rows_edit(body)
    with open(copy / ham.METADATA_CSV, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *body])
    return copy, body


def test_wrong_root_missing_csv_and_empty_folder_are_data_errors(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "missing")):
        load_dataset("ham10000", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    for name in ("ham10000", "isic2017", "derm7pt", "eis", "folder"):
        with pytest.raises(DataError, match="empty"):
            load_dataset(name, tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "note.txt").write_text("x")
    with pytest.raises(DataError, match="HAM10000_metadata.csv"):
        load_dataset("ham10000", tmp_path / "other")
    with pytest.raises(DataError, match="meta.csv"):
        load_dataset("derm7pt", tmp_path / "other")
    with pytest.raises(DataError, match="labels.csv"):
        load_dataset("folder", tmp_path / "other")
    (tmp_path / "other" / "HAM10000_metadata.csv").write_text("image_id,dx\n")
    with pytest.raises(DataError, match="lesion_id"):
        load_dataset("ham10000", tmp_path / "other")


def test_duplicates_unknown_labels_missing_files_and_ages(generated, tmp_path):
    def edit(body):
        body = [list(r) for r in body]
        body[0][2] = "melanoma?"  # unknown label
        body[1][1] = "ISIC_0000000"  # no such file
        body[2][4] = ""  # NaN age: not a problem
        body[3][4] = "-5"  # negative age
        body[4][4] = "130"  # too old
        body[5][4] = "forty"  # not a number
        body[6][5] = "F"  # sex spellings
        body[7][5] = "Male "
        body[8][5] = ""
        body[9][6] = " Lower   Extremity"
        body[10][6] = ""
        return body + [list(body[11]), list(body[11])]  # the same image id twice more

    copy, body = _ham_copy(generated, tmp_path, edit)
    table = load_dataset("ham10000", copy)
    ids = [r[1] for r in body]
    samples = table.samples.set_index("image_id")
    assert _kinds(table, ids[0]) == {UNKNOWN_LABEL} and ids[0] not in samples.index
    assert _kinds(table, "ISIC_0000000") == {MISSING_FILE} and "ISIC_0000000" not in samples.index
    assert _kinds(table, ids[2]) == set() and math.isnan(samples.loc[ids[2], "age"])
    for position in (3, 4, 5):
        assert _kinds(table, ids[position]) == {BAD_AGE}
        assert math.isnan(samples.loc[ids[position], "age"])  # kept, age unknown
    assert [samples.loc[ids[i], "sex"] for i in (6, 7, 8)] == ["female", "male", "unknown"]
    assert samples.loc[ids[9], "site"] == "lower extremity" and samples.loc[ids[10], "site"] == "unknown"
    duplicates = [p for p in table.problems if p.kind == DUPLICATE_ID]
    assert [p.image_id for p in duplicates] == [ids[11], ids[11]] and "3 times" in duplicates[0].detail
    assert samples.index.is_unique and ids[11] in samples.index
    assert len(table) == len(body) - 2 - 2  # unknown label, missing file, two extra copies


def test_images_found_anywhere_below_the_root(generated, tmp_path):
    copy = tmp_path / "ham"
    shutil.copytree(generated["ham10000"], copy)
    nested = copy / "a" / "b"
    nested.mkdir(parents=True)
    part = copy / "HAM10000_images_part_2"
    moved = sorted(part.iterdir())[0]
    moved.rename(nested / moved.name)
    (nested / "loop").symlink_to(copy, target_is_directory=True)  # a cycle must not hang the walk
    table = load_dataset("ham10000", copy)
    assert table.problems == []
    assert (table.samples["image_path"] == str(nested / moved.name)).sum() == 1


# --- real data ------------------------------------------------------------------------------------

@pytest.mark.real_data
def test_real_ham10000_counts_and_speed(ham10000_root):
    start = time.perf_counter()
    table = load_dataset("ham10000", ham10000_root)
    elapsed = time.perf_counter() - start
    assert len(table) == 7993 and table.samples["lesion_id"].nunique() == 5984
    assert table.class_counts() == {"akiec": 269, "bcc": 426, "bkl": 864, "df": 91, "mel": 845, "nv": 5386, "vasc": 112}
    assert table.problems == []
    assert (table.samples["mask_path"] != "").all()
    assert elapsed < 2.0, f"loading took {elapsed:.2f} s"


@pytest.mark.real_data
def test_real_isic2017_counts(isic2017_root):
    table = load_dataset("isic2017", isic2017_root)
    assert len(table) == 2150 and table.problems == []
    train = table.subset(table.samples["split"] == "train")
    val = table.subset(table.samples["split"] == "val")
    assert train.class_counts() == {"melanoma": 374, "seborrheic_keratosis": 254, "nevus": 1372}
    assert val.class_counts() == {"melanoma": 30, "seborrheic_keratosis": 42, "nevus": 78}
    assert table.samples["sex"].isin(["female", "male", "unknown"]).all()
    assert table.samples["age"].isna().sum() > 0  # "unknown" ages became NaN, silently


@pytest.mark.real_data
def test_real_ham10000_originals_share_the_layout(ham10000_originals_root):
    table = load_dataset("ham10000", ham10000_originals_root)
    assert len(table) == 97 and table.problems == []
