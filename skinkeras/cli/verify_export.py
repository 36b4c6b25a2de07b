"""`skinkeras verify-export EXPORT --run RUN_DIR`: compare an export with its Keras model."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify-export", help="compare a SavedModel / .tflite export with the run's Keras model on held-out images")
    parser.add_argument("export_path", help="a SavedModel folder, a .tflite file or a tflite_<quantize> folder")
    parser.add_argument("--run", dest="run_dir", required=True, help="the run directory it was exported from")
    parser.add_argument("--data-root", help="dataset folder (default: the run's config data.root)")
    parser.add_argument("--split", default="test", choices=("test", "val", "train"))
    parser.add_argument("--limit", type=int, default=None, help="at most N images (default: all)")
    parser.add_argument("--json", action="store_true", help="print the verification as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    import json

    from skinkeras.export.verify import summary_line, verify_export

    result = verify_export(args.export_path, args.run_dir, data_root=args.data_root, split=args.split,
                           limit=args.limit)
    print(json.dumps(result, indent=2) if args.json else summary_line(result))
    return 0 if result["passed"] else 1
