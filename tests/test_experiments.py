"""Experiment configs: every named config loads, overrides are typed, bad keys fail clearly."""

import json
from pathlib import Path

import pytest

from skinkeras.errors import ConfigError
from skinkeras.experiments import (
    apply_overrides,
    get_experiment,
    list_experiments,
    load_config,
    save_config,
)
from skinkeras.experiments.config import ExperimentConfig

FIXTURES = Path(__file__).parent / "fixtures"


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
    assert config.split.fractions == (0.8, 0.1, 0.1)  # data.split_fractions moved to the split section
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


def test_task_is_checked_and_its_section_chosen_by_task():
    from skinkeras.systems.classification.train import train
    from skinkeras.systems.two_stage.config import TwoStageConfig
    from skinkeras.tasks import get_task

    with pytest.raises(ConfigError, match="unknown task 'detection'; registered: classification"):
        apply_overrides(ExperimentConfig(), ["task=detection"])
    assert get_task("classification").function("train") is train
    # task= goes first wherever it stands, and brings its own section.
    config = apply_overrides(ExperimentConfig(), ["two_stage.hidden_units=64", "task=two_stage"])
    assert isinstance(config.task_config, TwoStageConfig) and config.two_stage.hidden_units == 64
    with pytest.raises(ConfigError, match="unknown config key 'two_stage.hidden_units'"):
        apply_overrides(ExperimentConfig(), ["two_stage.hidden_units=64"])  # classification has no such section
    with pytest.raises(ConfigError, match="unknown config key 'segmentation.nope'"):
        apply_overrides(ExperimentConfig(), ["task=segmentation", "segmentation.nope=1"])


def test_config_json_written_before_task_sections_still_loads(tmp_path):
    """Old config.json files held every task's section and data.split_*: they load as before."""
    legacy = json.loads((FIXTURES / "legacy_runs" / "two_stage" / "config.json").read_text())
    assert {"segmentation", "two_stage"} <= set(legacy) and "split_fractions" in legacy["data"]
    (tmp_path / "config.json").write_text(json.dumps(legacy))
    config = load_config(tmp_path / "config.json")
    assert config.task == "two_stage" and config.two_stage.backbones == tuple(legacy["two_stage"]["backbones"])
    assert config.split.fractions == tuple(legacy["data"]["split_fractions"])
    assert config.split.seed == legacy["data"]["split_seed"]
    save_config(config, tmp_path / "new.json")
    written = json.loads((tmp_path / "new.json").read_text())
    assert "segmentation" not in written and "split_fractions" not in written["data"]
    assert load_config(tmp_path / "new.json") == config


def test_experiments_are_found_in_subfolders():
    paths = {e.name: e.path for e in list_experiments()}
    assert paths["isic2017_two_stage_cpu"].parent.name == "two_stage"
    assert paths["unet_ham10000_masks"].parent.name == "segmentation"
    assert get_experiment("isic2017_two_stage_cpu").get_config().task == "two_stage"
