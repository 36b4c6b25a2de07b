"""`skinkeras data list | summary | synth`."""

from __future__ import annotations

import csv
import json
import sys

import pytest

from skinkeras.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_every_loader(capsys):
    code, out, _ = run(capsys, "data", "list")
    assert code == 0
    names = [line.split()[0] for line in out.strip().splitlines()]
    assert names == sorted(names) and {"ham10000", "isic2017", "derm7pt", "eis", "folder"} <= set(names)


def test_synth_then_summary_json_and_table(capsys, tmp_path):
    out_dir = tmp_path / "ham"
    code, out, _ = run(capsys, "data", "synth", "ham10000", "--out", str(out_dir), "--n", "25", "--seed", "4",
                       "--image-size", "48x36")
    assert code == 0 and "NOT MEDICAL DATA" in out and "HAM10000_metadata.csv" in out
    code, out, _ = run(capsys, "data", "summary", "ham10000", "--root", str(out_dir), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["n_images"] == 25 and summary["generated"] and summary["problems"] == {}
    assert summary["image_size"]["width"]["median"] == 48
    code, out, _ = run(capsys, "data", "summary", "ham10000", "--root", str(out_dir), "--no-check-images")
    assert code == 0 and "GENERATED DATA" in out and "images    25" in out


def test_summary_exits_zero_and_lists_problems_by_image_id(capsys, tmp_path):
    out_dir = tmp_path / "folder"
    run(capsys, "data", "synth", "folder", "--out", str(out_dir), "--n", "6", "--image-size", "32x32")
    with open(out_dir / "labels.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    rows.append(["images/none.jpg", rows[1][1], "", "", "", ""])
    with open(out_dir / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    code, out, _ = run(capsys, "data", "summary", "folder", "--root", str(out_dir))
    assert code == 0
    assert "missing_file (1)" in out and "none:" in out


def test_errors_are_one_line_and_exit_two(capsys, tmp_path):
    code, _, err = run(capsys, "data", "summary", "ham10000", "--root", str(tmp_path / "nowhere"))
    assert code == 2 and str(tmp_path / "nowhere") in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "data", "summary", "ham9", "--root", str(tmp_path))
    assert code == 2 and "valid names" in err
    code, _, err = run(capsys, "data", "summary", "isic2017", "--root", str(tmp_path), "--option", "bogus")
    assert code == 2 and "key=value" in err


def test_synth_refuses_a_non_empty_folder_without_force(capsys, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    code, _, err = run(capsys, "data", "synth", "eis", "--out", str(tmp_path / "out"), "--n", "4")
    assert code == 2 and "--force" in err
    code, out, _ = run(capsys, "data", "synth", "eis", "--out", str(tmp_path / "out"), "--n", "4", "--force")
    assert code == 0 and "measurements" in out
    code, _, err = run(capsys, "data", "synth", "eis", "--out", str(tmp_path / "o2"), "--n", "4", "--image-size", "big")
    assert code == 2 and "WIDTHxHEIGHT" in err


def test_loader_options_pass_through(capsys, tmp_path):
    out_dir = tmp_path / "isic"
    run(capsys, "data", "synth", "isic2017", "--out", str(out_dir), "--n", "12", "--image-size", "32x32")
    code, out, _ = run(capsys, "data", "summary", "isic2017", "--root", str(out_dir), "--json", "--option", "splits=val")
    summary = json.loads(out)
    assert code == 0 and list(summary["split_counts"]) == ["val"]


def test_data_cli_does_not_import_tensorflow(tmp_path):
    import subprocess

    code = (
        "import sys; from skinkeras.cli import main; "
        f"main(['data', 'synth', 'folder', '--out', {str(tmp_path / 'f')!r}, '--n', '3']); "
        f"main(['data', 'summary', 'folder', '--root', {str(tmp_path / 'f')!r}]); "
        "print('tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.real_data
def test_acceptance_real_ham10000_summary(capsys, ham10000_root):
    code, out, _ = run(capsys, "data", "summary", "ham10000", "--root", str(ham10000_root), "--json")
    summary = json.loads(out)
    assert code == 0 and summary["n_images"] == 7993 and summary["n_lesions"] == 5984
    assert summary["class_counts"] == {"akiec": 269, "bcc": 426, "bkl": 864, "df": 91, "mel": 845, "nv": 5386, "vasc": 112}


@pytest.mark.real_data
def test_acceptance_real_isic2017_summary(capsys, isic2017_root):
    code, out, _ = run(capsys, "data", "summary", "isic2017", "--root", str(isic2017_root), "--json")
    summary = json.loads(out)
    assert code == 0 and summary["n_images"] == 2150 and summary["split_counts"] == {"train": 2000, "val": 150}
    assert summary["class_counts"] == {"melanoma": 404, "seborrheic_keratosis": 296, "nevus": 1450}
