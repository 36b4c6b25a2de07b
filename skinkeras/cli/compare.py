"""`skinkeras compare RUN_OR_PREDICTIONS ...`: one metric for several models, with BCa intervals and
a paired permutation test for each pair, from their predictions files."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="compare runs on one metric: BCa intervals and paired permutation tests",
        description="Compare the models of several evaluated runs (or predictions.csv files) on the samples "
                    "they all predicted: the metric with its BCa interval for each, and a two-sided paired "
                    "permutation test for every pair. A run with several models (two-stage) gives one row per "
                    "model; --model picks some.")
    parser.add_argument("sources", nargs="+", metavar="RUN_OR_PREDICTIONS",
                        help="run directories (their evaluation_<split>/predictions.csv) or predictions.csv files")
    parser.add_argument("--split", default="test", help="which evaluation of each run (default test)")
    parser.add_argument("--metric", default="balanced_accuracy",
                        help="balanced_accuracy (default), macro_auc, accuracy, specificity_at_sensitivity, "
                             "auc:<class>, score:<name>")
    parser.add_argument("--model", action="append", default=[], metavar="NAME",
                        help="compare only these models of multi-model runs (repeatable)")
    parser.add_argument("--sensitivity", type=float, default=0.98,
                        help="target sensitivity of specificity_at_sensitivity (default 0.98)")
    parser.add_argument("--permutations", type=int, default=10_000, help="permutations per pair (default 10,000)")
    parser.add_argument("--resamples", type=int, default=2_000, help="bootstrap resamples per model (0: no CIs)")
    parser.add_argument("--out", help="also write compare.md, compare.csv and compare.json into this folder")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def load_systems(sources, split: str = "test", models=()) -> dict:
    """name -> one model's Predictions, from run directories or predictions files."""
    from pathlib import Path

    from skinkeras.engine.run_directory import PREDICTIONS, RunDirectory
    from skinkeras.errors import SkinkerasError
    from skinkeras.evaluation.predictions import Predictions

    systems = {}
    for source in sources:
        path = Path(source)
        if path.is_dir():
            run = RunDirectory(path)
            file = run.evaluation(split).predictions
            if not file.exists():
                raise SkinkerasError(f"{path} has no {file.relative_to(path)}: evaluate it first "
                                     f"(skinkeras evaluate {path} --data-root DIR --split {split})")
            label = run.name
        else:
            file, label = path, path.stem
            if path.name == PREDICTIONS:  # RUN/evaluation_<split>/predictions.csv: named after the run
                label = path.parent.parent.name if path.parent.name.startswith("evaluation_") else path.parent.name
        predictions = Predictions.read(file)
        chosen = [m for m in predictions.models if not models or m in models]
        for model in chosen:
            name = label if len(predictions.models) == 1 else f"{label}:{model}"
            if name in systems:
                name = f"{name} ({file})"
            systems[name] = predictions.select(model)
    if not systems:
        raise SkinkerasError(f"none of the models {list(models)} is in {', '.join(map(str, sources))}")
    return systems


def run(args) -> int:
    import json
    from pathlib import Path

    from skinkeras.evaluation.compare import compare_predictions, markdown
    from skinkeras.files import atomic_write_text, write_json

    systems = load_systems(args.sources, args.split, args.model)
    result = compare_predictions(systems, args.metric, n_permutations=args.permutations,
                                 n_resamples=args.resamples, target_sensitivity=args.sensitivity)
    text = markdown(result)
    if args.out:
        import pandas as pd

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "compare.md", text)
        write_json(out / "compare.json", result)
        frame = pd.DataFrame([{"model": r["model"], "n": r["n"], result["metric"]: r["value"],
                               "ci_low": r["ci95"][0], "ci_high": r["ci95"][1]} for r in result["rows"]])
        frame.to_csv(out / "compare.csv", index=False)
    print(json.dumps(result, indent=2) if args.json else text, end="" if not args.json else "\n")
    return 0
