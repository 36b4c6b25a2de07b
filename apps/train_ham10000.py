"""`make train-ham10000`: train, evaluate and export the default HAM10000 experiment.

With --data DIR it trains on the real data set there: on a machine with a GPU,
`ham10000_soft_attention` (paper 001: ImageNet weights where they can be downloaded, else the
from-scratch recipe, said in one line); on a CPU-only machine, `ham10000_from_scratch_cpu` (the
from-scratch recipe sized for an hour on 2 cores; `--experiment` picks another). Without it, it
says so, generates a small synthetic set in the HAM10000 layout (NOT medical data) and trains
briefly on that, so the whole path can be seen working on any machine. It ends by printing where
the run, its report and its exported SavedModel are.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from skinkeras.errors import SkinkerasError
from skinkeras.quiet import quiet_tensorflow

GPU_EXPERIMENT = "ham10000_soft_attention"
CPU_EXPERIMENT = "ham10000_from_scratch_cpu"
# A brief run that shows every stage on generated data in a few minutes on a laptop CPU.
SYNTHETIC_OVERRIDES = ["data.image_size=96", "data.batch_size=16", "train.epochs=3", "model.weights=",
                       "train.warmup_epochs=1", "train.freeze_bn_epochs=1"]


def default_experiment() -> str:
    """The paper's config where a GPU can train it, the CPU recipe elsewhere."""
    import tensorflow as tf

    return GPU_EXPERIMENT if tf.config.list_physical_devices("GPU") else CPU_EXPERIMENT


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="", help="HAM10000 folder (empty: generated data)")
    parser.add_argument("--out", default="", help="run directory (default: runs/ham10000-<time>)")
    parser.add_argument("--synthetic-dir", default="runs/synthetic_ham10000")
    parser.add_argument("--synthetic-n", type=int, default=600)
    parser.add_argument("--experiment", default="", help="experiment to train (default: by device, see above)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet_tensorflow()  # before anything imports TensorFlow
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from skinkeras.experiments import apply_overrides, get_experiment
    from skinkeras.experiments.app_data import real_or_generated_root
    from skinkeras.runs import evaluate_run, export_run, train_experiment

    overrides = list(args.overrides)
    experiment = args.experiment or default_experiment()
    print(f"Experiment: {experiment}")
    root, generated = real_or_generated_root(
        args.data, experiment=experiment, dataset_label="HAM10000",
        make_hint="make train-ham10000 DATA=/path/to/HAM10000", generator="ham10000",
        generated_dir=args.synthetic_dir, n=args.synthetic_n, marker="HAM10000_metadata.csv")
    if generated:
        overrides = SYNTHETIC_OVERRIDES + overrides
    config = apply_overrides(get_experiment(experiment).get_config(), overrides + [f"data.root={root}"])
    run_dir = Path(args.out or f"runs/ham10000-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"Run directory: {run_dir}")
    train_experiment(config, run_dir)

    print("Evaluating the best checkpoint on the lesion-grouped test split ...")
    metrics, files = evaluate_run(run_dir, root, split="test")
    print("Exporting a serving SavedModel (raw images + age/sex/site in, probabilities out) and verifying it ...")
    exported = export_run(run_dir, "saved_model", data_root=root, force=True)
    export_dir = Path(exported["path"])
    verification = exported["verification"]

    ci = metrics["balanced_accuracy_ci"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print()
    print(f"Test split ({metrics['n']} images): balanced accuracy {fmt(metrics['balanced_accuracy'])} "
          f"(95% CI {fmt(ci[0])}-{fmt(ci[1])}), macro AUC {fmt(metrics['macro_auc'])}"
          + ("" if args.data else "  [generated data]"))
    print(f"Run:        {run_dir.resolve()}")
    print(f"Report:     {files['report'].resolve()}")
    print(f"SavedModel: {export_dir.resolve()} (max |dp| vs Keras {verification['max_abs_diff']:.2g} on "
          f"{verification['n']} test images: {'passed' if verification['passed'] else 'FAILED'})")
    return 0 if verification["passed"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SkinkerasError as error:
        print(f"train-ham10000: error: {error}", file=sys.stderr)
        sys.exit(2)
