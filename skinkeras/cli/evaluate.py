"""`skinkeras evaluate RUN_DIR|EXPORT`: predictions.csv, then metrics with confidence intervals, a report and plots."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="evaluate a trained run or an export (metrics.json, report, plots)")
    parser.add_argument("run_dir", metavar="RUN_DIR|EXPORT",
                        help="a run directory written by `skinkeras train`, or an export written by `skinkeras "
                             "export` (SavedModel folder, TFLite folder or .tflite file: every image under "
                             "--data-root, --out required)")
    parser.add_argument("--data-root", help="dataset folder (default: the run's own, from its config.json; "
                                            "required for an export)")
    parser.add_argument("--dataset", help="dataset layout (default: the run's; an export: found from the root's files)")
    parser.add_argument("--split", default=None, choices=("test", "val", "train", "all"),
                        help="the run's lesion-grouped split (default test), or all images under the root "
                             "(external set; the only choice for an export); a cross-validation run: test "
                             "(its out-of-fold predictions)")
    parser.add_argument("--out", help="report folder (default: RUN_DIR/evaluation_<split>; needed for an export)")
    parser.add_argument("--multi-crop", action="store_true", help="average predictions over 36 crops")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (0: no CIs)")
    parser.add_argument("--sensitivity", type=float, default=0.98,
                        help="target sensitivity for two-class operating points")
    parser.set_defaults(func=run)


def run(args) -> int:
    from skinkeras.runs import evaluate_run

    metrics, files = evaluate_run(args.run_dir, args.data_root, dataset=args.dataset, split=args.split,
                                  out_dir=args.out, multi_crop=args.multi_crop, n_resamples=args.resamples,
                                  target_sensitivity=args.sensitivity)
    print(metrics["summary"])  # every task's scorer says in one line what matters to it
    if "export" in metrics:  # what the export was given other than as written: the user should see it
        for note in metrics.get("notes", [])[1:]:
            print(note)
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0
