"""`skinkeras train EXPERIMENT`: train a named experiment into a run directory."""

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
    parser.set_defaults(func=run)


def run(args) -> int:
    import json
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
        print("note: --resume uses the run's stored config.json; the overrides given are ignored")
    summary = train_experiment(config, out, resume=args.resume)
    print(json.dumps(summary, indent=2))
    print(f"run directory: {out}")
    return 0
