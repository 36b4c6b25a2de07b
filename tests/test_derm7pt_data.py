"""derm7pt-shaped data for late fusion: clinical images that may be missing, elevation, the site
vocabulary, and the generator's independent per-view evidence."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from skinkeras.cli import main
from skinkeras.data import load_dataset
from skinkeras.data.derm7pt import CLASS_NAMES, DERM7PT_SITES
from skinkeras.data.summary import format_summary, summarize
from skinkeras.data.synth import synthesize
from skinkeras.data.synth.derm7pt import EVIDENCE_FILE
from skinkeras.data.synth.drawing import STYLES, blend_styles, lesion_of_style, make_lesion
from skinkeras.data.table import EXCLUDING_KINDS, MISSING_CLINICAL, MISSING_FILE, UNKNOWN_VALUE, Problem
from skinkeras.errors import DataError


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return synthesize("derm7pt", tmp_path_factory.mktemp("d7") / "d", n=12, seed=2, image_size="48x32").out_dir


def _kinds(table, image_id):
    return {p.kind for p in table.problems if p.image_id == image_id}


def _edit_meta(source: Path, copy: Path, edit) -> list[dict]:
    """A copy of a generated derm7pt folder whose meta.csv rows (dicts) pass through `edit`."""
    shutil.copytree(source, copy)
    path = copy / "meta" / "meta.csv"
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    edit(rows)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


# --- the problem kind ----------------------------------------------------------------------------

def test_missing_clinical_is_a_problem_that_keeps_the_case():
    assert MISSING_CLINICAL == "missing_clinical" and MISSING_CLINICAL not in EXCLUDING_KINDS
    assert not Problem("1", MISSING_CLINICAL).excludes


# --- derm7pt loader ------------------------------------------------------------------------------

def test_derm7pt_columns_elevation_and_sites(generated):
    table = load_dataset("derm7pt", generated)
    samples = table.samples
    assert list(samples.columns[-3:]) == ["clinical_path", "diagnosis", "elevation"]
    assert set(samples["elevation"]) <= {"flat", "palpable", "nodular"}
    assert set(samples["site"]) <= set(DERM7PT_SITES) and table.problems == []
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in samples["clinical_path"])


def test_derm7pt_missing_clinical_kept_missing_derm_excluded_odd_site_reported(generated, tmp_path):
    def edit(rows):
        rows[0]["clinic"] = ""  # empty cell
        rows[1]["clinic"] = "G000/gone.jpg"  # no such file
        rows[2]["derm"] = "G000/gone_derm.jpg"
        rows[3]["elevation"] = " Nodular "
        rows[4]["elevation"] = ""
        rows[5]["location"] = "Head  Neck"
        rows[6]["location"] = "elbow"

    rows = _edit_meta(generated, tmp_path / "d", edit)
    table = load_dataset("derm7pt", tmp_path / "d")
    samples = table.samples.set_index("image_id")
    ids = [r["case_num"] for r in rows]
    assert _kinds(table, ids[0]) == {MISSING_CLINICAL} and samples.loc[ids[0], "clinical_path"] == ""
    assert _kinds(table, ids[1]) == {MISSING_CLINICAL} and samples.loc[ids[1], "clinical_path"] == ""
    details = {p.image_id: p.detail for p in table.problems}
    assert "empty 'clinic' cell" in details[ids[0]] and str(tmp_path / "d" / "images" / "G000" / "gone.jpg") in details[ids[1]]
    assert _kinds(table, ids[2]) == {MISSING_FILE} and ids[2] not in samples.index  # no clinical noise either
    assert "gone_derm.jpg" in details[ids[2]]
    assert samples.loc[ids[3], "elevation"] == "nodular" and samples.loc[ids[4], "elevation"] == "unknown"
    assert samples.loc[ids[5], "site"] == "head neck" and _kinds(table, ids[5]) == set()
    assert _kinds(table, ids[6]) == {UNKNOWN_VALUE}  # reported (kept; the metadata encoder treats it as unknown)
    assert len(table) == len(rows) - 1
    text = format_summary(summarize(table, check_images=False))
    assert "missing_clinical (2, kept)" in text and "missing_file (1)" in text and "with clinical: 9" in text


def test_derm7pt_without_elevation_column_is_unknown(generated, tmp_path):
    shutil.copytree(generated, tmp_path / "d")
    path = tmp_path / "d" / "meta" / "meta.csv"
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    drop = rows[0].index("elevation")
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([r[:drop] + r[drop + 1:] for r in rows])
    assert (load_dataset("derm7pt", tmp_path / "d").samples["elevation"] == "unknown").all()


# --- folder loader -------------------------------------------------------------------------------

def _folder(root: Path, rows, header):
    (root / "imgs").mkdir(parents=True)
    (root.parent / "outside").mkdir(exist_ok=True)
    image = np.full((16, 16, 3), 128, np.uint8)
    for name in ("a", "b", "c", "d", "a_cl", "c_cl"):
        cv2.imwrite(str(root / "imgs" / f"{name}.png"), image)
    cv2.imwrite(str(root.parent / "outside" / "x_cl.png"), image)
    with open(root / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def test_folder_clinical_and_elevation_columns(tmp_path):
    root = (tmp_path / "data").resolve()
    _folder(root, [["imgs/a.png", "x", "imgs/a_cl.png", "Palpable"], ["b", "y", "", ""],
                   ["imgs/c.png", "x", "c_cl", "flat"], ["imgs/d.png", "y", "../outside/x_cl.png", "nodular"],
                   ["imgs/gone.png", "x", "imgs/a_cl.png", "flat"]],
            ["image", "label", "clinical", "elevation"])
    table = load_dataset("folder", root)
    samples = table.samples.set_index("image_id")
    assert list(samples.index) == ["a", "b", "c", "d"]
    assert samples.loc["a", "clinical_path"] == str(root / "imgs" / "a_cl.png")
    assert samples.loc["c", "clinical_path"] == str(root / "imgs" / "c_cl.png")  # an id, looked up below the root
    assert samples.loc["b", "clinical_path"] == "" and samples.loc["d", "clinical_path"] == ""
    assert _kinds(table, "b") == {MISSING_CLINICAL} and _kinds(table, "d") == {MISSING_CLINICAL}
    details = {p.image_id: p.detail for p in table.problems if p.kind == MISSING_CLINICAL}
    assert "empty 'clinical' cell" in details["b"] and "outside the data root" in details["d"]
    assert _kinds(table, "gone") == {MISSING_FILE}
    assert list(samples["elevation"]) == ["palpable", "unknown", "flat", "nodular"]
    assert load_dataset("folder", root, allow_outside_root=True).samples.set_index("image_id").loc[
        "d", "clinical_path"].endswith("outside/x_cl.png")


def test_folder_without_the_columns_is_unchanged(tmp_path):
    root = tmp_path / "data"
    _folder(root, [["imgs/a.png", "x"], ["imgs/b.png", "y"]], ["image", "label"])
    table = load_dataset("folder", root)
    assert "clinical_path" not in table.samples.columns and "elevation" not in table.samples.columns
    assert not [p for p in table.problems if p.kind == MISSING_CLINICAL]


# --- the generator -------------------------------------------------------------------------------

def test_blend_styles_ends_and_middle():
    rng = np.random.default_rng(0)
    true, other = STYLES["melanoma"], STYLES["bcc"]
    assert blend_styles(true, other, 1.0, rng) == true
    zero = blend_styles(true, other, 0.0, rng)
    assert zero == other  # every numeric field and colour, and the categorical ones
    half = blend_styles(true, other, 0.5, rng)
    assert half.size == pytest.approx((true.size + other.size) / 2)
    assert half.colour == tuple(int(round((a + b) / 2)) for a, b in zip(true.colour, other.colour))
    with pytest.raises(ValueError, match="0..1"):
        blend_styles(true, other, 1.5, rng)
    a, b = np.random.default_rng(4), np.random.default_rng(4)
    assert make_lesion(a, "nevus").seed == lesion_of_style(b, STYLES["nevus"]).seed  # the same draws


def test_generator_same_seed_same_bytes_and_evidence_kept_out_of_meta(tmp_path):
    first = synthesize("derm7pt", tmp_path / "a", n=6, seed=9, image_size="40x32").out_dir
    second = synthesize("derm7pt", tmp_path / "b", n=6, seed=9, image_size="40x32").out_dir
    assert _digest(first) == _digest(second)
    assert (first / "meta" / "meta.csv").read_bytes() == (second / "meta" / "meta.csv").read_bytes()
    header = (first / "meta" / "meta.csv").read_text().splitlines()[0]
    assert "weight" not in header and "distractor" not in header


def test_views_carry_independent_graded_evidence(tmp_path):
    out = synthesize("derm7pt", tmp_path / "d", n=60, seed=1, image_size="24x24", evidence_low=0.4).out_dir
    with open(out / EVIDENCE_FILE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    derm = np.array([float(r["derm_weight"]) for r in rows])
    clinic = np.array([float(r["clinic_weight"]) for r in rows])
    assert ((derm >= 0.4) & (derm <= 1)).all() and ((clinic >= 0.4) & (clinic <= 1)).all()
    assert all(r["derm_distractor"] != r["class"] != r["clinic_distractor"] for r in rows)
    assert all(r["derm_distractor"] in CLASS_NAMES for r in rows)
    assert any(r["derm_distractor"] != r["clinic_distractor"] for r in rows)  # drawn per view
    assert abs(np.corrcoef(derm, clinic)[0, 1]) < 0.4
    assert ((derm < 0.55) != (clinic < 0.55)).any()  # one view misleading where the other is not


def test_missing_clinical_share_empty_cells_and_loads(tmp_path):
    full = synthesize("derm7pt", tmp_path / "full", n=20, seed=3, image_size="32x32").out_dir
    part = synthesize("derm7pt", tmp_path / "part", n=20, seed=3, image_size="32x32", missing_clinical=0.25).out_dir
    with open(part / "meta" / "meta.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    empty = [r["case_num"] for r in rows if r["clinic"] == ""]
    assert len(empty) == 5
    assert len(list((part / "images").rglob("Gcl*.jpg"))) == 15
    table = load_dataset("derm7pt", part)
    assert len(table) == 20 and (table.samples["clinical_path"] == "").sum() == 5
    assert sorted(p.image_id for p in table.problems if p.kind == MISSING_CLINICAL) == sorted(empty)
    for path in (part / "images").rglob("*.jpg"):  # the other cases are the same images
        assert path.read_bytes() == (full / path.relative_to(part)).read_bytes()
    with pytest.raises(DataError, match="missing_clinical"):
        synthesize("derm7pt", tmp_path / "bad", n=5, missing_clinical=-0.1)
    with pytest.raises(DataError, match="evidence_low"):
        synthesize("derm7pt", tmp_path / "bad", n=5, evidence_low="high")


def test_cli_passes_derm7pt_options_and_refuses_them_elsewhere(capsys, tmp_path):
    code = main(["data", "synth", "derm7pt", "--out", str(tmp_path / "d"), "--n", "8", "--image-size", "24x24",
                 "--evidence-low", "0.6", "--missing-clinical", "0.5"])
    assert code == 0 and "4 without a clinical image" in capsys.readouterr().out
    notice = (tmp_path / "d" / "README_SYNTHETIC.txt").read_text()
    assert "evidence_low: 0.6" in notice and "missing_clinical: 0.5" in notice
    code = main(["data", "synth", "folder", "--out", str(tmp_path / "f"), "--n", "3", "--missing-clinical", "0.5"])
    assert code == 2 and "derm7pt option" in capsys.readouterr().err
