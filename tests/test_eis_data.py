"""EIS data for paper 000: labels + diagnoses, bad spectra named and excluded, the evaluated set,
and the semi-synthetic generator (real HAM10000 images, generated spectra)."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from skinkeras.cli import main as cli_main
from skinkeras.data import load_dataset
from skinkeras.data.eis import BENIGN_DIAGNOSES, CLASS_NAMES, MALIGNANT_DIAGNOSES, evaluated_mask
from skinkeras.data.summary import format_summary, summarize
from skinkeras.data.synth import synthesize
from skinkeras.data.synth.eis_paired import HAM_DIAGNOSES, ham_lesions, lesion_targets, pick_lesions
from skinkeras.data.table import MISSING_FILE, UNKNOWN_VALUE, UNREADABLE
from skinkeras.errors import ConfigError, DataError, SkinkerasError


def _good():
    rng = np.random.default_rng(0)
    return (1e4 * (1 + rng.random((2, 10, 35))) * np.exp(-0.3j)).astype(np.complex64)


def _write(root, rows, header=("lesion_id", "label", "diagnosis")):
    (root / "spectra").mkdir(parents=True, exist_ok=True)
    with open(root / "eis_metadata.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    for row in rows:
        np.save(root / "spectra" / f"{row[0]}.npy", _good())


def test_old_label_files_read_as_malignant_melanoma(tmp_path):
    _write(tmp_path, [("a", "melanoma"), ("b", "benign"), ("c", "Melanoma")], header=("lesion_id", "label"))
    table = load_dataset("eis", tmp_path)
    assert table.class_names == CLASS_NAMES == ("benign", "malignant")
    samples = table.samples.set_index("lesion_id")
    assert samples["label"].to_dict() == {"a": "malignant", "b": "benign", "c": "malignant"}
    assert samples["diagnosis"].to_dict() == {"a": "melanoma", "b": "benign_unspecified", "c": "melanoma"}
    assert not table.problems


def test_diagnosis_column_and_unknown_diagnoses_are_kept(tmp_path):
    rows = [("a", "malignant", "bcc"), ("b", "benign", "seborrheic_keratosis"), ("c", "benign", ""),
            ("d", "malignant", "weird"), ("e", "benign", "melanoma"), ("f", "melanoma", "")]
    _write(tmp_path, rows)
    table = load_dataset("eis", tmp_path)
    samples = table.samples.set_index("lesion_id")
    assert len(samples) == 6
    assert samples["diagnosis"].to_dict() == {"a": "bcc", "b": "seborrheic_keratosis", "c": "benign_unspecified",
                                              "d": "weird", "e": "melanoma", "f": "melanoma"}
    assert samples.loc["d", "label"] == "malignant" and samples.loc["e", "label"] == "benign"
    reported = {p.image_id: p for p in table.problems}
    assert set(reported) == {"d", "e"} and {p.kind for p in reported.values()} == {UNKNOWN_VALUE}
    assert "contradicts" in reported["e"].detail
    assert set(MALIGNANT_DIAGNOSES) >= {"melanoma", "bcc", "scc", "akiec", "dysplastic"}
    assert set(BENIGN_DIAGNOSES) >= {"nevus", "seborrheic_keratosis", "dermatofibroma", "vascular", "benign_unspecified"}


def test_evaluated_mask_benign_plus_melanoma(tmp_path):
    frame = pd.DataFrame({"label": ["benign", "malignant", "malignant", "benign"],
                          "diagnosis": ["nevus", "melanoma", "bcc", "benign_unspecified"]})
    assert evaluated_mask(frame, "benign+melanoma").tolist() == [True, True, False, True]
    assert evaluated_mask(frame, "all").all()
    with pytest.raises(ConfigError, match="'melanoma only'"):
        evaluated_mask(frame, "melanoma only")
    with pytest.raises(DataError, match="diagnosis"):
        evaluated_mask(frame[["label"]])
    _write(tmp_path, [("a", "malignant", "scc"), ("b", "melanoma", "")])
    assert evaluated_mask(load_dataset("eis", tmp_path)).tolist() == [False, True]


def test_bad_spectra_are_named_excluded_and_counted(tmp_path, capsys):
    ids = ["ok", "nan", "inf", "zero", "shape", "dtype", "gone", "junk"]
    _write(tmp_path, [(i, "benign", "") for i in ids])
    spectra = tmp_path / "spectra"
    with_nan = _good()
    with_nan[0, 3, :4] = np.nan
    np.save(spectra / "nan.npy", with_nan)
    with_inf = _good()
    with_inf[1, 0, 0] = np.inf
    np.save(spectra / "inf.npy", with_inf)
    np.save(spectra / "zero.npy", np.zeros((0, 10, 35), np.complex64))
    np.save(spectra / "shape.npy", np.zeros((2, 10, 34), np.complex64))
    np.save(spectra / "dtype.npy", np.abs(_good()))
    (spectra / "gone.npy").unlink()
    (spectra / "junk.npy").write_bytes(b"not numpy")
    table = load_dataset("eis", tmp_path)
    assert table.samples["lesion_id"].tolist() == ["ok"]
    details = {p.image_id: (p.kind, p.detail) for p in table.problems}
    assert details["nan"] == (UNREADABLE, f"{spectra / 'nan.npy'}: non-finite values (4 of 700)")
    assert details["inf"][1].endswith("non-finite values (1 of 700)")
    assert "zero measurements" in details["zero"][1] and "shape (2, 10, 34)" in details["shape"][1]
    assert "float32 is not complex" in details["dtype"][1] and "not a readable .npy" in details["junk"][1]
    assert details["gone"][0] == MISSING_FILE
    summary = summarize(table, check_images=False)
    assert summary["n_excluded"] == 7 and summary["problem_counts"] == {MISSING_FILE: 1, UNREADABLE: 6}
    text = format_summary(summary)
    for lesion_id in ids[1:]:
        assert f"    {lesion_id}: " in text
    assert cli_main(["data", "summary", "eis", "--root", str(tmp_path), "--no-check-images"]) == 0
    assert "nan: " in capsys.readouterr().out


def test_plain_generator_writes_diagnoses_and_effect_size_keeps_the_draws(tmp_path):
    one = synthesize("eis", tmp_path / "one", n=12, seed=1, image_fraction=0.0)
    zero = synthesize("eis", tmp_path / "zero", n=12, seed=1, image_fraction=0.0, effect_size=0.0)
    a, b = load_dataset("eis", one.out_dir).samples, load_dataset("eis", zero.out_dir).samples
    assert a["label"].tolist() == b["label"].tolist() and a["n_measurements"].tolist() == b["n_measurements"].tolist()
    assert set(zip(a["label"], a["diagnosis"])) <= {("benign", "nevus"), ("malignant", "melanoma")}
    with pytest.raises(DataError, match="effect size"):
        synthesize("eis", tmp_path / "bad", n=12, effect_size=-1)


# --- the semi-synthetic set on the real HAM10000 copy ----------------------------------------------

@pytest.fixture(scope="module")
def ham_samples(ham10000_root):
    return load_dataset("ham10000", ham10000_root).samples


@pytest.fixture(scope="module")
def ham_lesion_rows(ham_samples):
    return ham_lesions(ham_samples)


def test_one_image_per_lesion_first_or_seeded(ham_samples, ham_lesion_rows):
    first = ham_lesion_rows
    assert first["lesion_id"].is_unique and first["lesion_id"].is_monotonic_increasing
    assert set(first["lesion_id"]) == set(ham_samples["lesion_id"])
    smallest = ham_samples.groupby("lesion_id")["image_id"].min()
    assert (first.set_index("lesion_id")["image_id"] == smallest).all()
    drawn = ham_lesions(ham_samples, "random", seed=1)
    assert drawn.equals(ham_lesions(ham_samples, "random", seed=1))
    assert (drawn["lesion_id"] == first["lesion_id"]).all() and (drawn["image_id"] != first["image_id"]).any()
    with pytest.raises(DataError, match="image choice"):
        ham_lesions(ham_samples, "best")


def test_default_draw_has_the_papers_size_and_balance(ham_lesion_rows):
    lesions = ham_lesion_rows
    assert lesions["lesion_id"].is_unique and len(lesions) == lesions["lesion_id"].nunique()
    picked = pick_lesions(lesions, seed=0)
    assert len(picked) == 988 and picked["label"].value_counts().to_dict() == {"benign": 631, "malignant": 357}
    targets = lesion_targets(lesions, 988)
    malignant = lesions[lesions["label"] == "malignant"]["diagnosis"].value_counts()
    for diagnosis, count in malignant.items():  # proportional to HAM's lesion counts, within one lesion
        assert abs(targets[("malignant", diagnosis)] - 357 * count / malignant.sum()) < 1
    assert picked.equals(pick_lesions(lesions, seed=0)) and not picked.equals(pick_lesions(lesions, seed=1))
    assert len(pick_lesions(lesions, "all")) == len(lesions)
    with pytest.raises(DataError, match="malignant lesions"):
        pick_lesions(lesions, 3000)  # 1,084 malignant; the copy has 934


def test_paired_generator_on_real_ham(ham10000_root, ham_lesion_rows, tmp_path):
    out = tmp_path / "paired"
    assert cli_main(["data", "synth", "eis", "--images-from", "ham10000", "--root", str(ham10000_root),
                     "--out", str(out), "--lesions", "40", "--seed", "3"]) == 0
    table = load_dataset("eis", out)
    samples = table.samples
    assert len(samples) == 40 and not table.problems
    assert samples["label"].value_counts().to_dict() == {"benign": 26, "malignant": 14}
    assert samples["n_measurements"].between(1, 6).all()
    assert (out / "README_SYNTHETIC.txt").read_text().startswith("SEMI-SYNTHETIC")
    source = ham_lesion_rows.set_index("lesion_id")
    metadata = pd.read_csv(out / "eis_metadata.csv", dtype=str).set_index("lesion_id")
    for row in samples.itertuples():
        real = source.loc[row.lesion_id]  # HAM lesion ids are kept
        assert (row.label, row.diagnosis) == HAM_DIAGNOSES[real["dx"]]
        assert row.image_path.endswith(f"images/{row.lesion_id}.jpg")
        assert open(row.image_path, "rb").read() == open(real["image_path"], "rb").read()
        assert metadata.loc[row.lesion_id, "ham_image_id"] == real["image_id"]
    # Deterministic given the seed.
    again = tmp_path / "again"
    synthesize("eis", again, seed=3, images_from="ham10000", root=ham10000_root, lesions=40)
    for lesion_id in samples["lesion_id"]:
        np.testing.assert_array_equal(np.load(out / "spectra" / f"{lesion_id}.npy"),
                                      np.load(again / "spectra" / f"{lesion_id}.npy"))
    assert summarize(table, check_images=False)["semi_synthetic"]


def test_paired_generator_errors(tmp_path, capsys):
    base = ["data", "synth", "eis", "--out", str(tmp_path / "x")]
    assert cli_main(base + ["--images-from", "isic2017", "--root", str(tmp_path)]) == 2
    assert "--images-from supports ['ham10000']. Received: 'isic2017'" in capsys.readouterr().err
    assert cli_main(base + ["--images-from", "ham10000"]) == 2
    assert "needs --root" in capsys.readouterr().err
    assert cli_main(base + ["--lesions", "40"]) == 2
    assert "--lesions needs --images-from" in capsys.readouterr().err
    with pytest.raises(SkinkerasError, match="layout eis only"):
        synthesize("ham10000", tmp_path / "y", images_from="ham10000", root=tmp_path)


def test_spectra_come_from_the_label_alone():
    from skinkeras.data.synth.eis_paired import draw_spectra

    labels = ["benign", "malignant"] * 10
    spectra = draw_spectra(labels, seed=5, effect_size=1.0)
    assert all(1 <= len(s) <= 6 and s.shape[1:] == (10, 35) and s.dtype == np.complex64 for s in spectra)
    again = draw_spectra(labels, seed=5, effect_size=1.0)
    assert all(np.array_equal(a, b) for a, b in zip(spectra, again))
    # Same draws at another effect size: only the malignant lesions change.
    flat = draw_spectra(labels, seed=5, effect_size=0.0)
    assert [len(s) for s in flat] == [len(s) for s in spectra]
    assert all(np.array_equal(a, b) == (label == "benign") for a, b, label in zip(spectra, flat, labels))
