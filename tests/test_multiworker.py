"""Training on several machines: `skinkeras train ... --strategy multiworker` with two worker
processes on this machine (TF_CONFIG on loopback ports, CPU), tf.distribute's
MultiWorkerMirroredStrategy between them.

Fast (default suite): a toy task registered here (mean colour -> Dense -> batch norm -> softmax)
trains on two workers; the chief writes the run, the other worker a scratch copy deleted at its
exit, and both end with the same weights, batch-norm statistics included. Which directory a worker trains into is also checked without a
cluster. Slow: the paper-001 classifier (MobileNetV3Small, 32 px) on two workers, the non-chief
killed after an epoch and the pair resumed with `--resume`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from skinkeras.tasks import Task, register_task

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_dataset(config, table, *, training: bool, epoch: int = 0):
    """Elements `({"colour": float32[3]}, one-hot[C])`: the image's mean RGB in 0..1."""
    import tensorflow as tf

    from skinkeras.data.pipeline import read_image

    samples = table.samples
    data = tf.data.Dataset.from_tensor_slices((samples["image_path"].to_numpy(dtype=str),
                                               samples["label_index"].to_numpy(dtype="int32")))
    if training:
        # Every pass over the dataset in the same order: under a tf.distribute strategy Keras' fit
        # draws one batch from a first pass to build the model and trains on a second one.
        data = data.shuffle(len(samples), seed=config.train.seed + epoch, reshuffle_each_iteration=False)

    def load(path, label):
        return {"colour": tf.reduce_mean(read_image(path), axis=[0, 1]) / 255.0}, tf.one_hot(label, table.num_classes)

    return data.map(load).batch(config.data.batch_size, drop_remainder=training)


def build_model(config, num_classes, dtype=None):
    import keras

    inputs = keras.Input((3,), name="colour")
    x = keras.layers.Dense(8, use_bias=False, name="hidden")(inputs)  # a bias before batch norm gets noise alone
    x = keras.layers.BatchNormalization(momentum=0.5, name="norm")(x)  # per-replica statistics unless synchronized
    x = keras.layers.Activation("relu")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model({"colour": inputs}, outputs, name="toy_bn")


def train(config, run_dir, *, resume=False, verbose="auto"):
    import keras

    from skinkeras.engine.fit import build_or_resume, fit, start_run, write_summary
    from skinkeras.engine.run_data import load_split_table, split_sizes
    from skinkeras.engine.runtime import make_strategy

    config, run, state = start_run(config, run_dir, resume=resume)
    table = load_split_table(config, run)
    parts = {name: table.subset(table.samples["split"] == name) for name in ("train", "val")}

    def build():
        model = build_model(config, table.num_classes)
        model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate), loss="categorical_crossentropy")
        return model

    strategy = make_strategy(config.train.strategy)
    model = build_or_resume(run, state, build, strategy=strategy)
    result = fit(model, run, train_config=config.train, state=state, steps=None,
                 train_data=lambda epoch: make_dataset(config, parts["train"], training=True, epoch=epoch),
                 val_data=make_dataset(config, parts["val"], training=False), verbose=verbose)
    return write_summary(config, run, result, monitor=config.train.monitor, split_sizes=split_sizes(table),
                         replicas=strategy.num_replicas_in_sync)


register_task(Task(name="toy_bn", summary="mean colour -> Dense -> batch norm -> softmax (a test's task)",
                   element='({"colour": float32[3]}, one-hot float32[C])', build_model=build_model,
                   make_dataset=make_dataset, train=train))

def toy_config():
    from skinkeras.experiments.config import ExperimentConfig
    from skinkeras.experiments.sections import DataConfig, TrainConfig

    return ExperimentConfig(name="toy_bn", task="toy_bn", data=DataConfig(dataset="ham10000", batch_size=8),
                            train=TrainConfig(epochs=2, learning_rate=0.05, early_stopping_patience=0,
                                              lr_schedule="constant", monitor="val_loss"))


EXPERIMENT = '''"""The toy task of tests/test_multiworker.py (registered there).

Command:
    skinkeras train toy_bn.py --data-root DIR --strategy multiworker   (TF_CONFIG set)

Paper: none, a test.
"""
import tests.test_multiworker  # registers the "toy_bn" task


def get_config():
    return tests.test_multiworker.toy_config()
'''

# Each worker runs the CLI through this, which copies the non-chief's scratch checkpoint out before
# the exit handler deletes the scratch directory, so the test can compare the workers' weights.
DRIVER = """
import os, shutil, sys
from pathlib import Path
from skinkeras.cli import main
code = main(sys.argv[1:])
for found in Path(os.environ["TMPDIR"]).glob("skinkeras-worker*/checkpoints/last.keras"):
    shutil.copy(found, os.environ["KEEP_SCRATCH_MODEL"])
sys.exit(code)
"""


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Workers:
    """Two `skinkeras` worker processes of one cluster; `stop()` kills whatever still runs."""

    def __init__(self, tmp_path: Path, tag: str, args, extra_args=((), ())):
        self.tmp = [tmp_path / f"{tag}_tmp{index}" for index in range(2)]
        self.logs = [tmp_path / f"{tag}_worker{index}.log" for index in range(2)]
        self.kept = [tmp_path / f"{tag}_worker{index}_last.keras" for index in range(2)]
        cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
        self.processes = []
        for index in range(2):
            self.tmp[index].mkdir()
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TMPDIR=str(self.tmp[index]),
                       KEEP_SCRATCH_MODEL=str(self.kept[index]),
                       TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
            with open(self.logs[index], "w") as log:
                command = [sys.executable, "-c", DRIVER, *map(str, args), *extra_args[index]]
                self.processes.append(subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log,
                                                       stderr=subprocess.STDOUT))

    def output(self, index: int) -> str:
        return self.logs[index].read_text()

    def wait(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stop()
                pytest.fail(f"a worker still ran after {timeout:.0f} s:\n" + self.output(0)[-3000:] + self.output(1)[-3000:])
        return [process.returncode for process in self.processes]

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


@pytest.fixture
def workers(tmp_path):
    started = []

    def start(tag, args, extra_args=((), ())):
        started.append(Workers(tmp_path, tag, args, extra_args))
        return started[-1]

    yield start
    for group in started:
        group.stop()


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    from skinkeras.data.synth import synthesize

    root = tmp_path_factory.mktemp("toy_data")
    synthesize("ham10000", root, n=40, seed=1, image_size=(24, 18))
    return root


def _weights(path: Path):
    from skinkeras.saving import load_model

    return load_model(path).get_weights()


def _assert_same_weights(a: Path, b: Path):
    wa, wb = _weights(a), _weights(b)
    assert len(wa) == len(wb) > 0
    for x, y in zip(wa, wb):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_two_workers_train_one_run_written_by_the_chief(toy_data, tmp_path, workers):
    experiment = tmp_path / "toy_bn.py"
    experiment.write_text(EXPERIMENT)
    run = tmp_path / "run"
    # Worker 1's clock says its time budget is used after epoch 1, the chief's does not: the chief
    # decides, or worker 1 would leave while the chief waits for it in epoch 2's collectives.
    group = workers("toy", ["train", experiment, "--data-root", toy_data, "--out", run, "--strategy", "multiworker"],
                    extra_args=((), ("--set", "train.max_minutes=1e-6")))
    codes = group.wait(timeout=300)
    assert codes == [0, 0], group.output(0)[-3000:] + group.output(1)[-3000:]

    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state["epochs_done"] == 2 and [row["epoch"] for row in state["checkpoint"]["history"]] == [1, 2]
    summary = json.loads((run / "run.json").read_text())
    assert summary["epochs_done"] == 2 and summary["replicas"] == 2
    assert "time budget of 1e-06 min used" in group.output(1) and "Epoch 2/2" in group.output(1)
    # Worker 1 trained into a scratch directory (its complete checkpoint was copied out of it
    # before exit), which it deleted; worker 0, the chief, trained into the run.
    assert "trains into the scratch directory" in group.output(1)
    assert "trains into the scratch directory" not in group.output(0)
    assert group.kept[1].exists() and not group.kept[0].exists()
    assert not list(group.tmp[1].glob("skinkeras-*"))
    # Gradients and batch-norm statistics are all-reduced every step: both workers hold the same
    # model, moving mean and variance included (each worker's own without synchronization).
    _assert_same_weights(run / "checkpoints" / "last.keras", group.kept[1])


def test_the_chief_trains_into_the_run_and_another_worker_into_a_scratch_copy(tmp_path, monkeypatch):
    from skinkeras.engine.fit import start_run
    from skinkeras.engine.runtime import SCRATCH_MARK, cluster_task
    from skinkeras.experiments import ExperimentConfig, apply_overrides
    from skinkeras.experiments.config import save_config

    config = apply_overrides(ExperimentConfig(name="t"), ["train.strategy=multiworker"])
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert cluster_task("multiworker") == ("worker", 1, False)
    assert cluster_task("mirrored")[2]  # TF_CONFIG only counts for the multiworker strategy

    new = tmp_path / "new"
    _, run, state = start_run(config, new, resume=False)
    assert state is None and not new.exists(), "a non-chief worker wrote into the run directory"
    assert (run.path / "config.json").exists() and (run.path / SCRATCH_MARK).exists()

    # Resume: a copy of the chief's run without its logs and half-written files, which stay.
    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    (old / "logs").mkdir()
    save_config(config, old / "config.json")
    (old / "checkpoints" / "state.json").write_text(json.dumps({"epochs_done": 1}))
    (old / "checkpoints" / "last.keras").write_bytes(b"model")
    (old / "checkpoints" / "last.partial.keras").write_bytes(b"half")
    _, run, state = start_run(config, old, resume=True)
    assert state == {"epochs_done": 1}
    assert run.path != old and (run.path / "checkpoints" / "last.keras").read_bytes() == b"model"
    assert not (run.path / "logs").exists() and not (run.path / "checkpoints" / "last.partial.keras").exists()
    assert (old / "checkpoints" / "last.partial.keras").exists(), "only the chief cleans the run"
    _, nested, _ = start_run(config, run.path / "fold_0", resume=False)
    assert nested.path == run.path / "fold_0"  # below a scratch copy: not copied again

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    _, run, _ = start_run(config, tmp_path / "chief", resume=False)
    assert run.path == tmp_path / "chief" and (run.path / "config.json").exists()


def test_mirrored_strategy_over_two_logical_cpus_synchronizes_batch_norm(toy_data, tmp_path):
    """One machine, two replicas (MirroredStrategy on two logical CPUs): each replica's slice of the
    batch is normalized with the statistics of the whole batch."""
    experiment = tmp_path / "toy_bn.py"
    experiment.write_text(EXPERIMENT)
    script = (
        "import sys, tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "from skinkeras.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", script, "train", str(experiment), "--data-root", str(toy_data),
                             "--out", str(run), "--strategy", "mirrored"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((run / "run.json").read_text())
    assert summary["replicas"] == 2 and summary["epochs_done"] == 2
    # The oracle: one replica on the whole batch. Without synchronized batch norm each replica
    # normalizes its half with the half's statistics and the weights end elsewhere.
    from dataclasses import replace

    one = tmp_path / "one"
    config = toy_config()
    train(replace(config, data=replace(config.data, root=str(toy_data))), one, verbose=0)
    for x, y in zip(_weights(run / "checkpoints" / "last.keras"), _weights(one / "checkpoints" / "last.keras")):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


TINY_CLASSIFIER = ["data.dataset=ham10000", "data.image_size=32", "data.batch_size=8", "data.augment=false",
                   "model.backbone=MobileNetV3Small", "model.head=gap", "model.metadata_branch=none",
                   "train.early_stopping_patience=0", "model.weights="]


@pytest.mark.slow
def test_a_killed_worker_resumes_the_classifier_with_the_other(tmp_path, workers):
    """Minutes on 2 shared cores: two start-ups of a MobileNetV3Small on two workers."""
    from skinkeras.data.synth import synthesize

    data = tmp_path / "data"
    synthesize("ham10000", data, n=60, seed=3, image_size=(48, 36))
    run = tmp_path / "run"
    epochs = 3
    train = ["train", "ham10000_soft_attention", "--data-root", data, "--out", run, "--strategy", "multiworker"]
    train += [arg for o in TINY_CLASSIFIER + [f"train.epochs={epochs}"] for arg in ("--set", o)]
    first = workers("first", train)
    state_path = run / "checkpoints" / "state.json"
    deadline = time.monotonic() + 600
    while not (state_path.exists() and json.loads(state_path.read_text())["epochs_done"] >= 1):
        assert time.monotonic() < deadline, "no epoch finished in 600 s"
        assert all(p.poll() is None for p in first.processes), first.output(0)[-3000:] + first.output(1)[-3000:]
        time.sleep(0.05)
    first.processes[1].send_signal(signal.SIGKILL)
    # The chief cannot go on without it: its collectives fail (the cluster's heartbeats stop), as
    # a job scheduler would see before restarting the job. Killed here if it takes too long.
    try:
        first.processes[0].wait(timeout=120)
    except subprocess.TimeoutExpired:
        first.stop()
    done = json.loads(state_path.read_text())["epochs_done"]
    assert 1 <= done < epochs, "the run finished before a worker could be killed"

    resumed = workers("resumed", ["train", "ham10000_soft_attention", "--out", run, "--resume"])
    codes = resumed.wait(timeout=900)
    assert codes == [0, 0], resumed.output(0)[-3000:] + resumed.output(1)[-3000:]
    for index in range(2):
        assert f"resuming after epoch {done}" in resumed.output(index)
    state = json.loads(state_path.read_text())
    assert state["epochs_done"] == epochs
    assert [row["epoch"] for row in state["checkpoint"]["history"]] == list(range(1, epochs + 1))
    assert json.loads((run / "run.json").read_text())["replicas"] == 2
    _assert_same_weights(run / "checkpoints" / "last.keras", resumed.kept[1])
