"""The classifier of a classification experiment: `ClassifierConfig` from the config and the data."""

from __future__ import annotations

import dataclasses

from skinkeras.errors import SkinkerasError


def classifier_config(config, data, dtype: str | None, **overrides):
    """The `ClassifierConfig` of `config` for `data` (a `RunData`); `overrides` replace fields the
    experiment config does not carry (the two-stage members' `hidden_units`)."""
    from skinkeras.models.classifier import ClassifierConfig

    branch = config.model.metadata_branch
    return dataclasses.replace(ClassifierConfig(
        backbone=config.model.backbone,
        head=config.model.head,
        num_classes=len(data.class_names),
        image_size=config.data.image_size,
        metadata=None if data.metadata is None else branch,
        metadata_features=data.metadata.num_features if data.metadata else 20,
        weights=config.model.weights or None,
        attention_heads=config.model.attention_heads,
        attention_gamma_init=config.model.attention_gamma_init,
        attention_dropout=config.model.dropout,
        dtype=dtype,
    ), **overrides)


def build_model(config, data, dtype: str | None = None, **overrides):
    """The (uncompiled) classifier, with `model.bn_momentum` applied."""
    from skinkeras.models.classifier import build_classifier

    model = build_classifier(classifier_config(config, data, dtype, **overrides))
    set_batchnorm_momentum(model, config)
    return model


def set_batchnorm_momentum(model, config) -> None:
    """Applies `model.bn_momentum` (auto: 0.9 for random init) to every BatchNormalization layer."""
    import keras

    momentum = config.model.bn_momentum
    if momentum < 0:
        if config.model.weights:
            return
        momentum = 0.9
    if not 0 < momentum < 1:
        raise SkinkerasError(f"model.bn_momentum must be in (0, 1) or -1 (auto). Received: {momentum}")
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
