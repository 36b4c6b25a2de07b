"""`make train-isic2017`: train and evaluate paper 002's two-stage pipeline on ISIC 2017.

With --data DIR it trains `isic2017_two_stage_cpu` on the ISIC 2017 release there, cropping with
the U-Net run given by --segmenter (needed when the images have no lesion masks). Without --data it
says so, generates a small synthetic set in the ISIC 2017 layout (NOT medical data, with lesion
masks, so no segmenter is needed) and trains tiny models briefly, so every stage can be seen
working. It ends by printing the one-line summary and where the run and its report are.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from skinkeras.errors import SkinkerasError
from skinkeras.quiet import quiet_tensorflow

EXPERIMENT = "isic2017_two_stage_cpu"
# Tiny models on generated data: the whole path in a few minutes on a laptop CPU.
SYNTHETIC_OVERRIDES = [
    "data.image_size=48", "data.batch_size=16", "train.epochs=2", "train.max_minutes=0",
    "two_stage.backbones=MobileNetV3Small,MobileNetV2", "two_stage.hidden_units=32",
    "two_stage.lc_epochs=200",
]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="", help="ISIC 2017 folder (empty: generated data)")
    parser.add_argument("--segmenter", default="", help="a segmentation run (skinkeras train unet_ham10000_masks)")
    parser.add_argument("--out", default="", help="run directory (default: runs/isic2017-<time>)")
    parser.add_argument("--synthetic-dir", default="runs/synthetic_isic2017")
    parser.add_argument("--synthetic-n", type=int, default=240)
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples in the report")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet_tensorflow()  # before anything imports TensorFlow
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from skinkeras.experiments import apply_overrides, get_experiment
    from skinkeras.experiments.app_data import real_or_generated_root
    from skinkeras.runs import evaluate_run, train_experiment

    overrides = list(args.overrides)
    if args.segmenter:
        overrides.append(f"two_stage.segmenter_run={Path(args.segmenter).resolve()}")
    # Generated data: Training + Validation only, like the real copy (the test set is held out of
    # Training), with lesion masks, so no segmenter is needed.
    root, generated = real_or_generated_root(
        args.data, experiment=EXPERIMENT, dataset_label="ISIC 2017",
        make_hint="make train-isic2017 DATA=/path/to/ISIC2017 SEGMENTER=RUN", generator="isic2017",
        generated_dir=args.synthetic_dir, n=args.synthetic_n, marker="ISIC-2017_Training_Part3_GroundTruth.csv",
        what=", tiny models", image_size=(128, 128), fractions={"train": 0.8, "val": 0.2})
    if generated:
        overrides = SYNTHETIC_OVERRIDES + overrides
    config = apply_overrides(get_experiment(EXPERIMENT).get_config(), overrides + [f"data.root={root}"])
    run_dir = Path(args.out or f"runs/isic2017-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"Run directory: {run_dir}")
    started = time.monotonic()
    train_experiment(config, run_dir)
    print("Evaluating every model and ensemble on the held-out test part ...")
    metrics, files = evaluate_run(run_dir, root, n_resamples=args.resamples)
    print()
    print(metrics["summary"] + ("" if args.data else "  [generated data]"))
    print(f"Run:     {run_dir.resolve()}  ({(time.monotonic() - started) / 60:.1f} min)")
    print(f"Report:  {files['report'].resolve()}")
    print(f"Radar:   {files['radar'].resolve()}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SkinkerasError as error:
        print(f"train-isic2017: error: {error}", file=sys.stderr)
        sys.exit(2)
