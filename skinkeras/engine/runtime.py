"""Where training runs: precision policy and tf.distribute strategy, chosen from the config.

Mixed precision follows the device: mixed_float16 on a GPU, float32 on a CPU (where float16 math is
emulated and slower) unless the config asks otherwise. Multi-device training always goes through
tf.distribute (MirroredStrategy on one machine, MultiWorkerMirroredStrategy across machines, set up
from TF_CONFIG); the global batch from the config is split over the replicas by Keras.
"""

from __future__ import annotations

import logging

from skinkeras.errors import ConfigError

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")

log = logging.getLogger(__name__)


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
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        raise ConfigError(f"train.strategy must be one of {STRATEGIES}. Received: {name!r}")
    log.info("%s over %d replicas", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy
