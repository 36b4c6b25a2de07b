"""`skinkeras train EXPERIMENT`: train a named experiment into a run directory.

stdout holds the run summary alone (`--json`: one JSON object, with `run_dir`); Keras' progress and
the log go to stderr, as one plain line per epoch when stderr is not a terminal (no bars, no ANSI).
"""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a named experiment (see `skinkeras experiments`)",
        description="Train a named experiment. The resolved config, split, checkpoints, logs and "
                    "best model are written into the run directory.")
    parser.add_argument("experiment", help="experiment name or path to a config .py file")
    parser.add_argument("--data-root", help="dataset folder (sets data.root)")
    parser.add_argument("--out", help="run directory (default: saved_models/<experiment>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set train.epochs=3 (repeatable)")
    parser.add_argument("--strategy", choices=("default", "mirrored", "multiworker"),
                        help="tf.distribute strategy (sets train.strategy)")
    parser.add_argument("--precision", choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"),
                        help="dtype policy (sets train.precision; auto: mixed_float16 on GPU)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint (its stored config wins)")
    parser.add_argument("--json", action="store_true",
                        help="print the run summary as one JSON object (progress and log stay on stderr)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import contextlib
    import json
    import sys
    from pathlib import Path

    from skinkeras.experiments import apply_overrides, get_experiment
    from skinkeras.runs import train_experiment

    experiment = get_experiment(args.experiment)
    overrides = list(args.overrides)
    if args.data_root:
        overrides.append(f"data.root={Path(args.data_root).resolve()}")
    if args.strategy:
        overrides.append(f"train.strategy={args.strategy}")
    if args.precision:
        overrides.append(f"train.precision={args.precision}")
    config = apply_overrides(experiment.get_config(), overrides)
    out = Path(args.out or Path("saved_models") / experiment.name)
    if args.resume and overrides:
        print("note: --resume uses the run's stored config.json; the overrides given are ignored", file=sys.stderr)
    verbose = "auto" if sys.stderr.isatty() else 2  # bars for a person, one line per epoch for a log
    with contextlib.redirect_stdout(sys.stderr):  # Keras and the callbacks print to stdout
        summary = train_experiment(config, out, resume=args.resume, verbose=verbose)
    summary = _finite(summary)
    if args.json:
        print(json.dumps(dict(summary, run_dir=str(out)), indent=2))
        return 0
    print(json.dumps(summary, indent=2))
    print(f"run directory: {out}")
    return 0


def _finite(value):
    """The summary with NumPy numbers as plain ones and NaN / inf as None (NaN is not JSON)."""
    import math

    from skinkeras.files import json_default

    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if not isinstance(value, (str, int, float, bool, type(None))):
        try:
            value = json_default(value)
        except TypeError:
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
