"""Experiment configs: every named config loads, overrides are typed, bad keys fail clearly."""

import json

import pytest

from skinkeras.errors import ConfigError
from skinkeras.experiments import apply_overrides, get_experiment, list_experiments, load_config, save_config
from skinkeras.experiments.config import ExperimentConfig


def test_every_named_config_loads_and_documents_its_command():
    experiments = list_experiments()
    assert "ham10000_soft_attention" in {e.name for e in experiments}
    for experiment in experiments:
        config = experiment.get_config()
        assert isinstance(config, ExperimentConfig)
        assert config.name == experiment.name
        assert f"skinkeras train {experiment.name}" in experiment.doc
        assert "Paper" in experiment.doc


def test_default_experiment_matches_paper_001_training():
    config = get_experiment("ham10000_soft_attention").get_config()
    assert config.model.backbone == "MobileNetV3Large"
    assert config.model.head == "soft_attention"
    assert (config.train.learning_rate, config.train.adam_epsilon) == (1e-3, 0.1)
    assert (config.train.plateau_factor, config.train.min_learning_rate) == (0.2, 1e-7)
    assert config.train.class_weights == "balanced"


def test_overrides_are_typed_and_copy():
    base = ExperimentConfig()
    config = apply_overrides(
        base,
        ["train.epochs=3", "train.learning_rate=1e-4", "data.augment=false",
         "data.split_fractions=0.8,0.1,0.1", "model.backbone=MobileNetV3Small"],
    )
    assert config.train.epochs == 3 and isinstance(config.train.epochs, int)
    assert config.train.learning_rate == pytest.approx(1e-4)
    assert config.data.augment is False
    assert config.data.split_fractions == (0.8, 0.1, 0.1)
    assert config.model.backbone == "MobileNetV3Small"
    assert base.train.epochs != 3  # the original is untouched


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epoch=3", "unknown config key 'train.epoch'"),
        ("train.epochs=three", "train.epochs expects int"),
        ("train.epochs=2.5", "train.epochs expects int"),
        ("data.augment=maybe", "data.augment expects bool"),
        ("train=3", "is a section"),
        ("epochs", "key=value"),
    ],
)
def test_bad_overrides_say_what_was_received(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(ExperimentConfig(), [override])


def test_config_round_trips_through_json(tmp_path):
    config = apply_overrides(ExperimentConfig(), ["train.epochs=7", "data.root=/x"])
    save_config(config, tmp_path / "config.json")
    assert load_config(tmp_path / "config.json") == config
    values = json.loads((tmp_path / "config.json").read_text())
    values["train"]["bogus"] = 1
    (tmp_path / "bad.json").write_text(json.dumps(values))
    with pytest.raises(ConfigError, match="bogus"):
        load_config(tmp_path / "bad.json")


def test_unknown_experiment_lists_known_ones():
    with pytest.raises(ConfigError, match="ham10000_soft_attention"):
        get_experiment("no_such_experiment")


def test_task_is_checked_and_dispatched():
    from skinkeras.errors import ConfigError
    from skinkeras.experiments.config import ExperimentConfig, apply_overrides
    from skinkeras.training import tasks
    from skinkeras.training.trainer import train

    with pytest.raises(ConfigError, match="task must be one of"):
        apply_overrides(ExperimentConfig(), ["task=detection"])
    assert tasks.task_function("classification", "train") is train
    with pytest.raises(ConfigError, match="unknown task"):
        tasks.task_function("detection", "train")
