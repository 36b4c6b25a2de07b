"""Where training runs: precision policy and tf.distribute strategy, chosen from the config.

Mixed precision follows the device: mixed_float16 on a GPU, float32 on a CPU (where float16 math is
emulated and slower) unless the config asks otherwise. Multi-device training always goes through
tf.distribute (MirroredStrategy on one machine, MultiWorkerMirroredStrategy across machines, set up
from TF_CONFIG); the global batch from the config is split over the replicas by Keras.

Several machines (`train.strategy=multiworker`): every worker runs the same command with its own
TF_CONFIG. The chief (task "chief", else worker 0) writes the run; every other worker trains into
a scratch copy of it (`worker_run`), so its checkpoints, logs and summary never touch the run; on
`--resume` it starts from a copy of the chief's run, which therefore has to be readable by every
worker (shared storage, or copied to the same path). Decisions taken outside Keras' collectives
(stop for the time budget) are the chief's (`chief_decides`), so no worker waits in a collective
for one that has stopped.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from skinkeras.engine.run_directory import EXPORT, LOGS, RunDirectory, as_run
from skinkeras.errors import ConfigError

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")
# Marks a non-chief worker's scratch copy of a run: runs below it (cross-validation folds) are
# already scratch and are not copied again.
SCRATCH_MARK = ".skinkeras-worker-scratch"

log = logging.getLogger(__name__)
# The process's one MultiWorkerMirroredStrategy, reused by later runs in it (cross-validation
# folds): creating it starts this worker's server on its TF_CONFIG port, which a second could not.
_MULTI_WORKER_STRATEGY = []


def resolve_precision(name: str) -> str:
    """The dtype policy name for `name` ("auto" looks for a GPU)."""
    if name not in PRECISIONS:
        raise ConfigError(f"train.precision must be one of {PRECISIONS}. Received: {name!r}")
    if name != "auto":
        return name
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"


def make_strategy(name: str):
    """A tf.distribute strategy by name."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif name == "multiworker":
        if not _MULTI_WORKER_STRATEGY:
            _MULTI_WORKER_STRATEGY.append(_multi_worker_strategy_class()())
        strategy = _MULTI_WORKER_STRATEGY[0]
    else:
        raise ConfigError(f"train.strategy must be one of {STRATEGIES}. Received: {name!r}")
    log.info("%s over %d replicas", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def _multi_worker_strategy_class():
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        """tf.distribute.MultiWorkerMirroredStrategy with the two `reduce` calls Keras 3.15's `fit`
        makes on it working, so that `model.fit` runs at all (keras-team/keras#20329):

        - nested values are reduced leaf by leaf, as MirroredStrategy does: `fit` reduces its first
          (x, y) batch in one call to build the model, which the collective strategy cannot convert
          to a tensor ("Attempt to convert a value ({'image': PerReplica ...}) with an unsupported
          type");
        - a scalar is reduced over the replicas when asked for axis 0: `fit` reduces every step's
          (scalar) metric results with MEAN along axis 0 on several workers, which fails ("Invalid
          reduction dimension 0 for input with 0 dimensions"). On one machine Keras takes the mean
          of the replicas' scalars, which is what this gives.
        """

        def reduce(self, reduce_op, value, axis):
            parent = super()

            def one(leaf):
                scalar = self.experimental_local_results(leaf)[0].shape.rank == 0
                return parent.reduce(reduce_op, leaf, None if scalar else axis)

            return tf.nest.map_structure(one, value)

    return MultiWorkerMirroredStrategy


def cluster_task(strategy_name: str) -> tuple[str, int, bool]:
    """`(task type, index, is_chief)` of this process: from TF_CONFIG under the multiworker strategy
    (the chief is task "chief", else worker 0, as in tf.distribute), else a lone chief."""
    if strategy_name != "multiworker" or not os.environ.get("TF_CONFIG"):
        return "chief", 0, True
    try:
        tf_config = json.loads(os.environ["TF_CONFIG"])
        cluster, task = tf_config.get("cluster", {}), tf_config.get("task", {})
        task_type, index = task["type"], int(task.get("index", 0))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ConfigError(f"TF_CONFIG must be JSON with a cluster and a task type. Received: "
                          f"{os.environ['TF_CONFIG']!r} ({error})") from None
    chief = task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)
    return task_type, index, chief


def worker_run(run, strategy_name: str, *, resume: bool) -> RunDirectory:
    """The directory this process trains into: `run` on the chief (and without several workers);
    on any other worker a scratch directory, deleted when the process ends, that starts as a copy
    of the chief's run when resuming (its logs, exports and half-written files left out)."""
    run = as_run(run)
    task_type, index, chief = cluster_task(strategy_name)
    if chief or any((folder / SCRATCH_MARK).exists() for folder in (run.path, *run.path.parents)):
        return run
    scratch = Path(tempfile.mkdtemp(prefix=f"skinkeras-{task_type}{index}-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    if resume and run.path.is_dir():
        shutil.copytree(run.path, scratch, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.partial*", LOGS, EXPORT))
    (scratch / SCRATCH_MARK).write_text(f"scratch copy of {run.path} for {task_type} {index}; the chief writes the run\n")
    log.info("%s %d is not the chief: it trains into the scratch directory %s; the chief writes %s",
             task_type, index, scratch, run.path)
    return type(run)(scratch)


def worker_count(strategy) -> int:
    """How many machines (workers, chief included) the strategy spans."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("chief", [])) + len(spec.get("worker", [])))


def chief_decides(strategy, flag: bool) -> bool:
    """The chief's `flag` on every worker (one all-reduce; `flag` itself on one machine). For
    decisions each worker takes on its own clock, where two workers could differ."""
    if worker_count(strategy) == 1:
        return bool(flag)
    import tensorflow as tf

    mine = float(flag) if strategy.extended.should_checkpoint else 0.0
    return float(strategy.reduce(tf.distribute.ReduceOp.SUM, tf.constant(mine), axis=None)) > 0.0


def shard_by_data(dataset, strategy):
    """`dataset` with tf.data's DATA auto-shard policy on several workers: every worker runs the
    whole pipeline and keeps its slice of each global batch, so the replicas of a step share one
    global batch of the epoch's order. (The AUTO policy first looks for files to split between the
    workers; these pipelines start from a table of paths, not file readers.)"""
    if worker_count(strategy) == 1:
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def synchronize_batch_norm(model, strategy) -> None:
    """Batch normalization over the global batch when it is split over several replicas.

    Keras' BatchNormalization normalizes each replica's slice of the batch with that slice's own
    statistics, and updates each replica's copy of the moving mean and variance from them alone
    (those variables are not aggregated): the replicas' models drift apart, the one saved is
    whichever the chief holds, and a slice of a few images gives noisy statistics. Synchronized,
    the statistics are all-reduced (three small all-reduces per layer and step): a step computes
    what it would on one machine and every replica keeps the same moving statistics."""
    if strategy.num_replicas_in_sync == 1:
        return
    import keras

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
