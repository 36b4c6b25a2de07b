"""`skinkeras models list|params` and `skinkeras bench models` (in-process, tiny sizes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from skinkeras.cli import main
from skinkeras.models.backbones import backbone_names
from skinkeras.models.classifier import ClassifierConfig, build_classifier


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_models_list_json_has_every_backbone(capsys):
    code, out, _ = run_cli(capsys, "models", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == backbone_names()
    dense = next(r for r in rows if r["name"] == "DenseNet201")
    assert dense["attention_point"] == "conv5_block29_1_relu"
    assert dense["attention_shape"] == [7, 7, 128]
    assert dense["scaling"] == "torch"
    assert dense["documented"]["params_m"] == 20.2
    irv2 = next(r for r in rows if r["name"] == "InceptionResNetV2")
    assert irv2["attention_layer_type"] == "BatchNormalization"


def test_models_list_table(capsys):
    code, out, _ = run_cli(capsys, "models", "list")
    assert code == 0
    for name in backbone_names():
        assert name in out
    assert "block8_9_mixed" in out


def test_models_params_json_matches_builder(capsys):
    code, out, _ = run_cli(
        capsys, "models", "params", "--backbone", "MobileNetV3Small", "--head", "soft_attention",
        "--metadata", "gessert", "--metadata-features", "20", "--num-classes", "3", "--image-size", "64", "--json",
    )
    assert code == 0
    result = json.loads(out)
    model = build_classifier(
        ClassifierConfig("MobileNetV3Small", "soft_attention", num_classes=3, image_size=64, metadata="gessert")
    )
    assert result["total"] == model.count_params()
    assert result["trainable"] + result["non_trainable"] == result["total"]
    assert result["non_trainable"] > 0  # batch-norm moving statistics
    assert result["metadata"] == "gessert" and result["image_size"] == 64


def test_models_params_no_gamma_drops_one_weight(capsys):
    args = ("models", "params", "--backbone", "VGG16", "--head", "soft_attention", "--image-size", "32", "--json")
    _, with_gamma, _ = run_cli(capsys, *args)
    _, without, _ = run_cli(capsys, *args, "--no-gamma")
    assert json.loads(with_gamma)["total"] == json.loads(without)["total"] + 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--backbone", "ResNet18"), "Received: name='ResNet18'"),
        (("--backbone", "VGG16", "--head", "lstm"), "head='lstm'"),
        (("--backbone", "InceptionV3", "--image-size", "32"), "at least 75"),
    ],
)
def test_models_params_bad_input_is_one_line_error(capsys, argv, message):
    code, out, err = run_cli(capsys, "models", "params", *argv)
    assert code == 2
    assert message in err and err.startswith("skinkeras: error:")
    assert out == ""


def test_cli_module_imports_no_tensorflow():
    code = (
        "import sys, skinkeras.cli.models, skinkeras.bench.models; "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_bench_models_smoke(capsys):
    code, out, _ = run_cli(
        capsys, "bench", "models", "--backbones", "MobileNetV3Small", "--runs", "1", "--batch-size", "2",
        "--image-size", "64", "--json",
    )
    assert code == 0
    (row,) = json.loads(out)
    assert row["backbone"] == "MobileNetV3Small" and row["image_size"] == 64
    assert row["images_per_s"] > 0 and row["params_total"] > 0 and row["depth"] > 0
    assert row["doc_top1"] is None  # keras.io lists no MobileNetV3 figures
    code, _, err = run_cli(capsys, "bench", "models", "--backbones", "AlexNet")
    assert code == 2 and "AlexNet" in err
