"""Classifier builder: config, dict inputs, mixed precision plumbing, and the fidelity parameter
counts of paper 001's reference models (full size: building without running is ~2 s each)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from skinkeras.models.classifier import ClassifierConfig, build_classifier
from skinkeras.models.inspection import parameter_counts, weighted_depth
from tests import harness

# The reference model minus its age Normalization layer's 3 weights (mean, variance, count): our
# metadata vector arrives already normalised (skinkeras.data.metadata), so we build 17,596,247.
DENSENET201_SA_META = 17_596_250 - 3


def nested_backbone(model: keras.Model) -> keras.Model:
    (backbone,) = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return backbone
INCEPTIONRESNETV2_SA = 47_535_287


def test_fidelity_densenet201_soft_attention_paper001_metadata():
    config = ClassifierConfig(
        "DenseNet201", "soft_attention", num_classes=7, image_size=224,
        metadata="paper001", metadata_features=21, attention_gamma_init=None,
    )
    model = build_classifier(config)
    assert model.count_params() == DENSENET201_SA_META
    # Where the figure comes from: backbone to conv5_block29_1_relu, SA layer (C=128), Dense(4096)
    # on 21 features, and the output Dense over 4x4x256 pooled + 4096 metadata features.
    backbone = nested_backbone(model)
    assert backbone.output.shape[1:] == (7, 7, 128)
    assert model.get_layer("head_sa_soft_attention").count_params() == 18_448
    assert model.get_layer("metadata_dense").count_params() == 21 * 4096 + 4096
    assert model.get_layer("predictions").count_params() == (4 * 4 * 256 + 4096) * 7 + 7
    # Our default keeps paper 001's learnable gamma: one weight more.
    with_gamma = build_classifier(ClassifierConfig(
        "DenseNet201", "soft_attention", num_classes=7, metadata="paper001", metadata_features=21
    ))
    assert with_gamma.count_params() == DENSENET201_SA_META + 1


def test_fidelity_inceptionresnetv2_soft_attention():
    model = build_classifier(
        ClassifierConfig("InceptionResNetV2", "soft_attention", num_classes=7, attention_gamma_init=None)
    )
    assert model.count_params() == INCEPTIONRESNETV2_SA
    assert model.get_layer("head_sa_soft_attention").count_params() == 27_664
    assert model.get_layer("predictions").count_params() == 4 * 4 * 384 * 7 + 7


def test_config_validation_and_round_trip():
    config = ClassifierConfig("MobileNetV3Small", "se", num_classes=3, image_size=64, hidden_units=128)
    assert ClassifierConfig.from_dict(config.to_dict()) == config
    assert config.input_size == 64
    assert ClassifierConfig("InceptionV3").input_size == 299
    with pytest.raises(ValueError, match="Received: head='transformer'"):
        ClassifierConfig(head="transformer")
    with pytest.raises(ValueError, match="Received: name='AlexNet'"):
        ClassifierConfig(backbone="AlexNet")
    with pytest.raises(ValueError, match="metadata='age'"):
        ClassifierConfig(metadata="age")
    with pytest.raises(ValueError, match="num_classes=0"):
        ClassifierConfig(num_classes=0)
    with pytest.raises(ValueError, match="colour"):
        ClassifierConfig.from_dict({"colour": "red"})


def test_paper002_style_classifier_dict_inputs_and_frozen_backbone(tmp_path):
    config = ClassifierConfig(
        "MobileNetV3Small", "se", num_classes=3, image_size=64, hidden_units=128,
        metadata="gessert", metadata_features=20, trainable_backbone=False,
    )
    model = build_classifier(config)
    assert set(model.input) == {"image", "metadata"}
    assert tuple(model.input["metadata"].shape) == (None, 20)
    assert model.get_layer("hidden").units == 128
    counts = parameter_counts(model)
    backbone = nested_backbone(model)
    assert counts["trainable"] == parameter_counts(model)["total"] - backbone.count_params() - (
        2 * 2 * 256  # the metadata branch's BN moving statistics
    )
    x = harness.random_inputs(model)
    harness.run_model_checks(model, x, tmp_path, train=False)


def test_images_enter_raw_and_are_scaled_inside():
    model = build_classifier(ClassifierConfig("VGG16", "gap", num_classes=2, image_size=32))
    scaling = model.get_layer("input_scaling")
    assert scaling.mode == "caffe"
    image = np.full((1, 32, 32, 3), 255.0, "float32")
    scaled = keras.ops.convert_to_numpy(scaling(image))
    np.testing.assert_allclose(scaled[0, 0, 0], [255 - 103.939, 255 - 116.779, 255 - 123.68], atol=1e-4)


@pytest.mark.parametrize("policy", harness.MIXED_POLICIES)
def test_dtype_is_plumbed_not_global(policy):
    before = keras.config.dtype_policy().name
    model = build_classifier(
        ClassifierConfig("MobileNetV3Small", "cbam", num_classes=4, image_size=64, metadata="paper001"),
        dtype=policy,
    )
    assert keras.config.dtype_policy().name == before
    assert model.get_layer("head_cbam").dtype_policy.name == policy
    assert nested_backbone(model).layers[5].dtype_policy.name == policy  # inside the backbone
    harness.check_eager_call(model, harness.random_inputs(model), expect_dtype="float32")


def test_depth_matches_keras_documentation():
    # keras.io applications table: ResNet50 depth 107, VGG16 16 (with their tops).
    assert weighted_depth(keras.applications.ResNet50(weights=None)) == 107
    assert weighted_depth(keras.applications.MobileNetV2(weights=None)) == 105
