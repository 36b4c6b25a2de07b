"""Quantization-aware fine-tuning (issue 5): the FakeQuant rounding, where the graph rounds, shared
weights, and `skinkeras finetune-int8` writing a new run that evaluates and exports like any run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skinkeras.errors import SkinkerasError


def test_fake_quant_rounds_to_the_int8_grid_of_its_range_with_a_straight_through_gradient():
    import tensorflow as tf

    from skinkeras.quantization.fake_quant import FakeQuant

    layer = FakeQuant(momentum=0.0)
    x = tf.constant(np.linspace(-1.3, 3.7, 1001, dtype="float32"))
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())  # no range observed yet: identity
    layer(tf.constant([-1.0, 3.0]), training=True)  # range [-1, 3]
    scale = 4.0 / 255.0
    zero_point = round(1.0 / scale)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    out = y.numpy()
    levels = (out / scale + zero_point)
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)  # on the grid
    inside = (x.numpy() >= -1.0) & (x.numpy() <= 3.0)
    assert np.abs(out - x.numpy())[inside].max() <= scale / 2 + 1e-6
    assert out.min() >= -1.0 - scale and out.max() <= 3.0 + scale  # clipped to the range
    assert layer(tf.constant([0.0])).numpy()[0] == 0.0  # zero is exact
    gradient = tape.gradient(y, x).numpy()  # straight through inside the range, zero outside
    np.testing.assert_array_equal(gradient[(x.numpy() > -0.99) & (x.numpy() < 2.99)], 1.0)
    assert np.all(gradient[(x.numpy() < -1.1) | (x.numpy() > 3.1)] == 0.0)
    # The range follows a moving average of the batch extremes.
    moving = FakeQuant(momentum=0.5)
    moving(tf.constant([0.0, 2.0]), training=True)
    moving(tf.constant([0.0, 4.0]), training=True)
    assert float(moving.range_max.numpy()) == pytest.approx(3.0)


def _tiny_classifier():
    from skinkeras.models.classifier import ClassifierConfig, build_classifier

    return build_classifier(ClassifierConfig("MobileNetV3Small", "soft_attention", num_classes=3, image_size=32,
                                             metadata="paper001", metadata_features=5))


def test_fake_quant_clone_shares_weights_and_rounds_where_tflite_rounds():
    import keras

    from skinkeras.quantization.fake_quant import FakeQuant
    from skinkeras.quantization.simulate import freeze_batchnorm, with_fake_quant
    from tests.test_export import calibrate_batchnorm

    model = calibrate_batchnorm(_tiny_classifier())
    assert freeze_batchnorm(model) > 10
    clone, fake_quants = with_fake_quant(model)
    assert len(fake_quants) > 50
    names = {fq.name for fq in fake_quants}
    flat = {layer.name: layer for layer in model._flatten_layers(include_self=False, recursive=True)}
    for name, layer in flat.items():
        if isinstance(layer, keras.layers.Conv2D) and not layer.use_bias:
            assert f"{name}_fake_quant" not in names, name  # folded into its BatchNormalization
    assert any(isinstance(flat[n[: -len("_fake_quant")]], keras.layers.BatchNormalization) for n in names)
    assert "predictions_fake_quant" in names  # the logits before the softmax, not the probabilities
    assert "predictions_rounded_logits" in {layer.name for layer in clone.layers}
    assert not any(isinstance(layer, FakeQuant) for layer in model._flatten_layers(recursive=True))

    rng = np.random.default_rng(0)
    inputs = {"image": rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32"),
              "metadata": rng.normal(size=(4, 5)).astype("float32")}
    np.testing.assert_allclose(clone(inputs), model(inputs), atol=1e-6)  # identity before observing
    clone(inputs, training=True)
    assert not np.allclose(clone(inputs), model(inputs), atol=1e-7)  # now rounds
    # Training the clone trains the model itself.
    assert [id(w) for w in clone.trainable_weights] == [id(w) for w in model.trainable_weights]
    before = [w.numpy().copy() for w in model.trainable_weights]
    clone.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    clone.train_on_batch(inputs, np.eye(3, dtype="float32")[[0, 1, 2, 0]])
    changed = sum(not np.allclose(a, w.numpy()) for a, w in zip(before, model.trainable_weights))
    assert changed > len(before) // 2


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A fake trained run (tests/test_export.py) with train / val / test parts."""
    import pandas as pd

    from tests.test_export import make_fake_run

    base = tmp_path_factory.mktemp("qat")
    run_dir = make_fake_run(base / "source", metadata="paper001", n=30)
    split = pd.read_csv(run_dir / "split.csv")
    split["split"] = np.array(["train", "train", "val", "test", "train"])[np.arange(len(split)) % 5]
    split.to_csv(run_dir / "split.csv", index=False)
    config = json.loads((run_dir / "config.json").read_text())
    config["data"].update(batch_size=4, cache="")
    (run_dir / "config.json").write_text(json.dumps(config))
    return run_dir


@pytest.mark.slow  # 50 s end to end; the fake-quant mechanics stay in the fast suite
def test_finetune_int8_writes_a_new_run_that_evaluates_and_exports(source_run, tmp_path, capsys):
    from skinkeras.cli import main
    from skinkeras.export.run_export import export_run
    from skinkeras.quantization.fake_quant import FakeQuant
    from skinkeras.saving import load_model

    out = tmp_path / "qat"
    assert main(["finetune-int8", str(source_run), "--out", str(out), "--epochs", "2",
                 "--learning-rate", "1e-4"]) == 0
    assert "next: skinkeras evaluate" in capsys.readouterr().out
    assert (out / "split.csv").read_text() == (source_run / "split.csv").read_text()
    run = json.loads((out / "run.json").read_text())
    assert run["epochs_done"] == 2 and run["best_epoch"] in (0, 1, 2)
    assert run["quantization_aware"]["simulated_roundings"] > 50
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3 and history[0].startswith("epoch")
    model = load_model(out / "best.keras")  # safe mode: nothing but registered layers
    assert not any(isinstance(layer, FakeQuant) for layer in model._flatten_layers(recursive=True))
    result = export_run(out, "tflite", quantize="int8", out_dir=tmp_path / "int8", verify=False,
                        calibration_samples=4)
    assert (tmp_path / "int8" / "model.tflite").stat().st_size > 0
    assert result["quantize"] == "int8"
    options = json.loads((tmp_path / "int8" / "export.json").read_text())["int8_options"]
    assert options["quantization_aware_ranges"] == len(json.loads((out / "int8_ranges.json").read_text())) > 50


def test_finetune_int8_refuses_bad_requests(source_run, tmp_path):
    from skinkeras.systems.classification.finetune_int8 import (
        finetune_quantization_aware,
    )

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(SkinkerasError, match="not empty"):
        finetune_quantization_aware(source_run, tmp_path / "taken")
    with pytest.raises(SkinkerasError, match="new run directory"):
        finetune_quantization_aware(source_run, source_run)
    with pytest.raises(SkinkerasError, match="at least 1"):
        finetune_quantization_aware(source_run, tmp_path / "new", epochs=0)
    with pytest.raises(SkinkerasError, match="not a finished training run"):
        finetune_quantization_aware(tmp_path / "taken", tmp_path / "new")


@pytest.mark.slow  # two int8 conversions; the fast suite checks the ranges reach the export above
def test_int8_conversion_uses_the_fine_tuned_ranges(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from skinkeras.export.serving import load_run_spec
    from skinkeras.export.tflite import convert
    from tests.test_export import calibrate_batchnorm, make_fake_run

    run_dir = make_fake_run(tmp_path / "run", metadata=None)
    spec = load_run_spec(run_dir)
    from skinkeras.engine.run_directory import load_run_model

    model = calibrate_batchnorm(load_run_model(run_dir))
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(4):
            yield {"image": rng.uniform(0, 255, (1, 32, 32, 3)).astype("float32")}

    # A distinctive range on one BatchNormalization output (not followed by a ReLU: hard swish).
    bn = next(layer for layer in model._flatten_layers(recursive=True) if layer.name == "conv_bn")
    # The logits' tuned range is not used: the export centers the logits (`center_logits`).
    ranges = {f"{bn.name}_fake_quant": [-7.3, 11.9], "predictions_fake_quant": [-40.0, 55.0]}
    scales, logits_top = [], []
    for given in (None, ranges):
        # All int8 (`--int8-all-ops`): by default the stem convolution stays float32 and has no range.
        flatbuffer = convert(model, spec, "int8", representative=representative, fake_quant_ranges=given,
                             float_ops=False)
        interpreter = Interpreter(model_content=flatbuffer)
        ops, tensors = interpreter._get_ops_details(), interpreter.get_tensor_details()
        stem = next(op for op in ops if op["op_name"] == "CONV_2D")  # conv + conv_bn
        scales.append(tensors[stem["outputs"][0]]["quantization"][0])
        scale, zero_point = tensors[[op for op in ops if op["op_name"] == "SOFTMAX"][-1]["inputs"][0]]["quantization"]
        logits_top.append(scale * (127 - zero_point))
    wanted = 19.2 / 255.0
    assert abs(scales[0] - wanted) > 1e-2 * wanted  # calibrated on random images: another range
    assert abs(scales[1] - wanted) < 1e-3 * wanted
    assert logits_top[1] < 0.5 * 55.0 and logits_top[0] < 0.5 * 55.0


@pytest.mark.slow  # the non-default split-hard-swish option: a clone, a fine-tune step and an int8 conversion
def test_split_hard_swish_tuning_rounds_its_three_parts_and_its_export_splits(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from skinkeras.engine.run_directory import load_run_model
    from skinkeras.export.serving import load_run_spec
    from skinkeras.export.tflite import convert
    from skinkeras.quantization.fake_quant import (
        fake_quant_ranges,
        uses_split_hard_swish,
    )
    from skinkeras.quantization.simulate import freeze_batchnorm, with_fake_quant
    from tests.test_export import calibrate_batchnorm, make_fake_run

    run_dir = make_fake_run(tmp_path / "run", metadata=None)
    spec = load_run_spec(run_dir)
    model = calibrate_batchnorm(load_run_model(run_dir))
    freeze_batchnorm(model)
    clone, fake_quants = with_fake_quant(model, split_hard_swish=True)
    names = {fq.name for fq in fake_quants}
    split = [name[: -len("_x_over_6")] for name in names if name.endswith("_fake_quant_x_over_6")]
    assert len(split) >= 2  # the stem's hard swish and the blocks' (names depend on the session)
    assert all({base, base + "_relu6_x_plus_3"} <= names for base in split)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    # Before any range is observed the clone computes the model's function: the split form is hard swish.
    np.testing.assert_allclose(clone({"image": images}), model({"image": images}), atol=1e-5)
    clone({"image": images}, training=True)
    ranges = fake_quant_ranges(fake_quants)
    assert uses_split_hard_swish(ranges) and not uses_split_hard_swish({"activation_fake_quant": [0, 1]})

    def representative():
        for index in range(4):
            yield {"image": images[index:index + 1]}

    flatbuffer = convert(model, spec, "int8", representative=representative, fake_quant_ranges=ranges,
                         split_hard_swish=True)
    ops_used = {op["op_name"] for op in Interpreter(model_content=flatbuffer)._get_ops_details()}
    assert "HARD_SWISH" not in ops_used and "CONV_2D" in ops_used


def test_weights_are_rounded_as_the_int8_export_stores_them():
    import keras

    from skinkeras.quantization.simulate import _rounded_kernel, with_fake_quant
    from tests.test_export import calibrate_batchnorm

    model = calibrate_batchnorm(_tiny_classifier())
    clone, _ = with_fake_quant(model, round_weights=True)
    wrapped = [layer for layer in clone._flatten_layers(recursive=True) if layer.name.endswith("_rounded_weights")]
    assert len(wrapped) > 30
    flat = {layer.name: layer for layer in model._flatten_layers(include_self=False, recursive=True)}
    conv, bn = flat["expanded_conv_depthwise"], flat["expanded_conv_depthwise_bn"]  # depthwise + its BN
    assert isinstance(conv, keras.layers.DepthwiseConv2D)
    rounded = np.asarray(_rounded_kernel(conv, bn))
    factor = np.asarray(bn.gamma) / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
    folded = rounded * factor.reshape(rounded.shape[2:])
    step = np.abs(np.asarray(conv.kernel) * factor.reshape(rounded.shape[2:])).max() / 127.0
    levels = folded / step
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)  # one int8 grid for the folded tensor
    assert np.abs(levels).max() <= 127.0 + 1e-3
    assert np.abs(rounded - np.asarray(conv.kernel)).max() > 0  # it does round
