"""Training paper 002's two-stage pipeline (task "two_stage"): crop lesions, train five SE-CNNs.

`train_two_stage(config, run_dir)` runs, resumably: the split (`data.load_split_table`), stage 1
(the lesion crops, `data.crop_stage`), stage 2 (for each variant and each backbone in
`two_stage.backbones` a member classification run, `members.train_member`, with its validation
and test probabilities stored), and last the deployed ensemble (`two_stage.deploy_ensemble` of
`two_stage.deploy_variant`'s members, fitted on the validation predictions; what `predict` and
`export` apply to new images). The run's files: `run_files.TwoStageRun`.

`--resume` skips every finished member (its run.json exists), continues an interrupted one from
its last epoch, and reuses the split and the crops.
"""

from __future__ import annotations

import logging
import time

from skinkeras.engine.run_data import split_sizes
from skinkeras.errors import ConfigError
from skinkeras.files import write_json
from skinkeras.systems.two_stage import data as stage_data
from skinkeras.systems.two_stage.members import (
    member_summary,
    predict_member,
    train_member,
)
from skinkeras.systems.two_stage.run_files import TwoStageRun

log = logging.getLogger(__name__)


def train_two_stage(config, run_dir, *, resume: bool = False, verbose="auto", crop_function=None) -> dict:
    """Trains the whole pipeline into `run_dir` (or continues it with `resume=True`)."""
    import keras

    from skinkeras.engine.fit import start_run

    if not resume and config.task != "two_stage":
        raise ConfigError(f"train_two_stage needs task=two_stage. Received: task={config.task!r}")
    if not resume:
        stage_data.active_variants(config)  # a bad variant list fails before anything is written
    config, run, _ = start_run(config, run_dir, resume=resume, holds_run=lambda r: r.exists())
    run = TwoStageRun(run.path)
    variants = stage_data.active_variants(config)
    started = time.monotonic()

    table, test_source = stage_data.load_split_table(config, run)
    if "segmented" in variants and crop_function is None and stage_data.needs_segmenter(table) \
            and not stage_data._crops_done(run, table) and not run.segmenter.best_model.exists():
        stage_data.check_segmenter_run(config.two_stage.segmenter_run)  # fail before any work is done
    stage_data.copy_segmenter(config, run)
    write_json(run.preprocessing, {
        "dataset": config.data.dataset,
        "class_names": list(table.class_names),
        "image_size": config.data.image_size,
        "test_source": test_source,
        "variants": variants,
        "backbones": list(config.two_stage.backbones),
        "input": "raw RGB 0..255, scaled inside each model",
    })
    sizes = split_sizes(table)
    log.info("isic2017: train %d, val %d (ensembles), test %d (%s)", sizes["train"], sizes["val"],
             sizes["test"], test_source)

    tables, crop_stats = stage_data.variant_tables(config, table, run, variants, crop_function=crop_function)
    jobs = [(v, b) for v in variants for b in config.two_stage.backbones]
    models = {}
    for index, (variant, backbone) in enumerate(jobs, 1):
        print(f"[two-stage {index}/{len(jobs)}] {variant} images, {backbone}", flush=True)
        summary = train_member(config, tables[variant], variant, backbone, run, verbose=verbose)
        for split in ("val", "test"):
            if (tables[variant].samples["split"] == split).any():
                predict_member(run, variant, backbone, split, table=tables[variant],
                               batch_size=config.data.batch_size)
        keras.backend.clear_session()  # ten models in one process: drop the finished one's graphs
        print(f"[two-stage {index}/{len(jobs)}] {variant}/{backbone} done: {summary.get('epochs_done')} epochs, "
              f"{summary.get('train_seconds_total')} s", flush=True)
        models[f"{variant}/{backbone}"] = member_summary(summary, config.train.monitor)
    from skinkeras.systems.two_stage.ensembling import deployed_ensemble

    deployed = deployed_ensemble(run, config)
    summary = {
        "experiment": config.name,
        "task": "two_stage",
        "test_source": test_source,
        "split_sizes": sizes,
        "variants": variants,
        "backbones": list(config.two_stage.backbones),
        "crops": crop_stats,
        "models": models,
        "deployed": deployed.describe(),
        "seconds_this_session": round(time.monotonic() - started, 1),
        "next": f"skinkeras evaluate {run.path} --data-root {config.data.root}",
    }
    write_json(run.summary, summary)
    return summary
