"""The backbone registry: every row builds, with every head, at a small input (the light rows in the
default run, the heavy ones, `HEAVY`, in the slow run); at full size (slow). Weights load from a
local file."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from skinkeras.models.backbones import (
    BACKBONES,
    backbone_names,
    build_backbone,
    dtype_policy_scope,
    find_insertion_layer,
    get_backbone_spec,
)
from skinkeras.models.classifier import ClassifierConfig, build_classifier
from skinkeras.preprocessing.scaling import SCALING_MODES
from tests import harness

NAMES = backbone_names()
FINAL_HEADS = ("gap", "se", "cbam")
# Backbones whose builds and training step (graph tracing dominates) cost 15-60 s each here: their
# head matrix and training step run in the slow suite (`make test-slow`). The fast suite keeps the
# MobileNets, VGG16, our own SEResNeXt50 and TinyCNN.
HEAVY = {"DenseNet121", "DenseNet169", "DenseNet201", "InceptionResNetV2", "ResNet152", "NASNetMobile", "NASNetLarge",
         "ResNet50", "InceptionV3", "Xception"}


def small_size(name: str) -> int:
    # 64 px gives a 2 x 2 map at the 32x-downsampling insertion points (a 1 x 1 map would make the
    # attention softmax trivial); the Inception family needs at least 75 / 71.
    return max(get_backbone_spec(name).min_size, 64)


def classifier(name, head, *, backbone=None, dtype=None, metadata=None):
    config = ClassifierConfig(
        name, head, num_classes=3, image_size=small_size(name), metadata=metadata, metadata_features=5
    )
    return build_classifier(config, backbone=backbone, dtype=dtype)


def _marked(names, heavy_mark):
    return [pytest.param(n, marks=heavy_mark) if n in HEAVY else n for n in names]


# ---------------------------------------------------------------- registry as data


def test_registry_rows_are_complete():
    assert len(NAMES) == 19  # 16 keras.applications rows (2 minimalistic MobileNetV3), SEResNeXt50, TinyCNN, TinySENet
    for name, spec in BACKBONES.items():
        assert spec.name == name
        assert spec.scaling in SCALING_MODES, name
        assert spec.min_size <= spec.default_size
        assert spec.attention.shape[-1] > 0 and spec.feature_width > 0
        assert spec.attention.source in ("paper001", "ours")
    assert {n for n, s in BACKBONES.items() if s.scaling == "raw"} == {
        "MobileNetV3Small", "MobileNetV3Large", "MobileNetV3SmallMinimalistic", "MobileNetV3LargeMinimalistic"}
    assert {n for n, s in BACKBONES.items() if s.scaling == "caffe"} == {"ResNet50", "ResNet152", "VGG16"}
    # The insertion points REFERENCES.md gives for paper 001's reference code.
    reference = {n for n, s in BACKBONES.items() if s.attention.source == "paper001"}
    assert reference == {
        "DenseNet201", "ResNet50", "ResNet152", "MobileNetV2", "InceptionResNetV2", "MobileNetV3Large", "NASNetMobile",
    }
    assert BACKBONES["DenseNet201"].attention.shape == (7, 7, 128)
    assert BACKBONES["InceptionResNetV2"].attention.shape == (8, 8, 192)


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError, match="DenseNet201.*Received: name='ResNet18'"):
        build_backbone("ResNet18")
    with pytest.raises(ValueError, match="at least 75"):
        build_backbone("InceptionV3", (64, 64, 3))
    with pytest.raises(ValueError, match="features='middle'"):
        build_backbone("VGG16", (32, 32, 3), features="middle")


def test_dtype_policy_scope_restores_global_policy():
    before = keras.config.dtype_policy().name
    with pytest.raises(RuntimeError):
        with dtype_policy_scope("mixed_float16"):
            assert keras.config.dtype_policy().name == "mixed_float16"
            raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == before


# ---------------------------------------------------------------- every backbone x every head


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis 1:UserWarning")
@pytest.mark.parametrize("index, name", [pytest.param(i, n, marks=pytest.mark.slow) if n in HEAVY else (i, n)
                                         for i, n in enumerate(NAMES)])
def test_backbone_builds_with_every_head(index, name, tmp_path):
    spec = get_backbone_spec(name)
    size = small_size(name)
    final = build_backbone(name, (size, size, 3), features="final")
    assert final.output.shape[-1] == spec.feature_width
    # Each final head round-trips through .keras on several light backbones here, on all in the
    # slow test (saving the heavy ones costs seconds each).
    light = [n for n in NAMES if n not in HEAVY]
    rotating_head = FINAL_HEADS[light.index(name) % len(FINAL_HEADS)] if name in light else None
    for head in FINAL_HEADS:
        model = classifier(name, head, backbone=final)
        x = harness.random_inputs(model)
        harness.check_symbolic_call(model)
        harness.check_eager_call(model, x)
        if head == rotating_head:
            harness.check_save_load(model, x, tmp_path)

    model = classifier(name, "soft_attention", metadata="gessert")
    scaling = model.get_layer("input_scaling")
    assert scaling.mode == spec.scaling
    attention_in = model.get_layer("head_sa_soft_attention").input
    assert attention_in.shape[-1] == spec.attention.shape[-1]
    x = harness.random_inputs(model)
    harness.check_symbolic_call(model)
    harness.check_eager_call(model, x)
    harness.check_save_load(model, x, tmp_path)

    # One mixed policy per backbone, alternating (both policies on every backbone: slow test).
    policy = harness.MIXED_POLICIES[index % 2]
    harness.check_mixed_precision(
        lambda p: classifier(name, "soft_attention", dtype=p), {"image": x["image"]}, policies=(policy,)
    )


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis 1:UserWarning")
@pytest.mark.parametrize("name", _marked(NAMES, pytest.mark.slow))
def test_backbone_training_step(name):
    model = classifier(name, "soft_attention", metadata="paper001")
    harness.check_training_step(model, harness.random_inputs(model))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_head_round_trips_trains_and_keeps_float32_outputs(name, tmp_path):
    for head in (*FINAL_HEADS, "soft_attention"):
        model = classifier(name, head, metadata="gessert")
        x = harness.random_inputs(model)
        harness.run_model_checks(model, x, tmp_path)
        harness.check_mixed_precision(lambda p, h=head: classifier(name, h, dtype=p), {"image": x["image"]})


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_full_size_feature_maps_and_insertion_points(name):
    spec = get_backbone_spec(name)
    final = build_backbone(name, features="final")
    assert final.output.shape[-1] == spec.feature_width
    layer = find_insertion_layer(final, spec.attention)
    assert tuple(layer.output.shape[1:]) == spec.attention.shape
    truncated = build_backbone(name, features="attention")
    assert tuple(truncated.output.shape[1:]) == spec.attention.shape


@pytest.mark.parametrize("name", ["MobileNetV3SmallMinimalistic", "MobileNetV3LargeMinimalistic"])
def test_minimalistic_mobilenetv3_has_no_hard_swish_nor_squeeze_excite(name):
    # The reason these rows exist: int8 hard swish runs outside XNNPACK (LiteRT 2.3.0). Their graphs
    # use ReLU only, no SE block (a Multiply), and the attention point is the last block's ReLU,
    # where the hard-swish rows have theirs (same channels, same 7 x 7 map at 224 px).
    hard_swish_twin = get_backbone_spec(name.removesuffix("Minimalistic"))
    spec = get_backbone_spec(name)
    model = build_backbone(name, (64, 64, 3))
    activations = {getattr(layer.activation, "__name__", "") for layer in model.layers
                   if isinstance(layer, keras.layers.Activation)}
    assert not activations & {"hard_swish", "hard_silu", "hard_sigmoid"}, activations
    assert not [layer.name for layer in model.layers if isinstance(layer, keras.layers.Multiply)]
    assert sum(isinstance(layer, keras.layers.ReLU) for layer in model.layers) > 10
    assert spec.attention.shape == hard_swish_twin.attention.shape
    assert spec.feature_width == hard_swish_twin.feature_width
    twin = build_backbone(hard_swish_twin.name, (64, 64, 3))
    assert any(isinstance(layer, keras.layers.Multiply) for layer in twin.layers)  # the check can fail
    assert model.count_params() < twin.count_params()  # no SE, 3x3 kernels
    truncated = build_backbone(name, (64, 64, 3), features="attention")
    # Auto-named layers get a per-session number: compare by position in the graph instead.
    point = find_insertion_layer(model, spec.attention)
    assert isinstance(truncated.layers[-1], keras.layers.ReLU)
    assert len(truncated.layers) == [layer.name for layer in model.layers].index(point.name) + 1
    assert truncated.output.shape[-1] == spec.attention.shape[-1]


# ---------------------------------------------------------------- weights from a local file


@pytest.mark.parametrize("name", ["MobileNetV2", "SEResNeXt50"])
def test_backbone_loads_local_weights_file(name, tmp_path):
    source = build_backbone(name, (64, 64, 3))
    path = tmp_path / f"{name}.weights.h5"
    source.save_weights(path)
    fresh = build_backbone(name, (64, 64, 3), weights=str(path))
    for want, got in zip(source.weights, fresh.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))
    # A randomly initialised build differs, so the equality above is the file's doing.
    other = build_backbone(name, (64, 64, 3))
    assert not all(
        np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
        for a, b in zip(source.trainable_weights, other.trainable_weights)
    )
    truncated = build_backbone(name, (64, 64, 3), weights=str(path), features="attention")
    source_by_path = {w.path: w for w in source.weights}
    for w in truncated.weights:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(w), keras.ops.convert_to_numpy(source_by_path[w.path])
        )


def test_weights_argument_errors(tmp_path):
    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(ValueError, match="nope.weights.h5"):
        build_backbone("VGG16", (32, 32, 3), weights=str(missing))
    with pytest.raises(ValueError, match="No ImageNet weights"):
        build_backbone("SEResNeXt50", (32, 32, 3), weights="imagenet")


def test_se_resnext50_matches_reference_parameter_count():
    from skinkeras.models.se_resnext import SEResNeXt50

    model = SEResNeXt50(include_top=True, input_shape=(224, 224, 3))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    # PyTorch se_resnext50_32x4d (Cadene pretrainedmodels / timm): 27,559,896 parameters; PyTorch
    # keeps BatchNorm running statistics as buffers, Keras counts them as non-trainable weights.
    assert trainable == 27_559_896
    assert tuple(model.get_layer("conv5_block3_out").output.shape[1:]) == (7, 7, 2048)
