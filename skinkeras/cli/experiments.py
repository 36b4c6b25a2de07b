"""`skinkeras experiments`: the named experiment configs and what each reproduces."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("experiments", help="list the named experiment configs")
    parser.add_argument("name", nargs="?", help="show one experiment's docstring and resolved config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (with NAME), e.g. --set train.epochs=3")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args) -> int:
    from skinkeras.experiments import apply_overrides, get_experiment, list_experiments
    from skinkeras.experiments.config import to_dict

    if args.name:
        experiment = get_experiment(args.name)
        config = apply_overrides(experiment.get_config(), args.overrides)
        if args.json:
            print(json.dumps(to_dict(config), indent=2))
        else:
            print(experiment.doc.strip(), end="\n\n")
            print(json.dumps({k: v for k, v in to_dict(config).items() if k != "description"}, indent=2))
        return 0
    experiments = list_experiments()
    if args.json:
        print(json.dumps([{"name": e.name, "summary": e.summary, "path": str(e.path)} for e in experiments], indent=2))
        return 0
    width = max((len(e.name) for e in experiments), default=10)
    for e in experiments:
        print(f"{e.name:<{width}}  {e.summary}")
    return 0
