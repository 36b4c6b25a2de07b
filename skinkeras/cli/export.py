"""`skinkeras export RUN_DIR --format saved_model|tflite`: export, verify, write a model card."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a run as a serving SavedModel or a TFLite model (verified, with a model card)")
    parser.add_argument("run_dir", help="a run directory written by `skinkeras train`")
    parser.add_argument("--format", default="saved_model", choices=("saved_model", "tflite"))
    parser.add_argument("--quantize", default="float32", choices=("float32", "float16", "dynamic", "int8"),
                        help="TFLite weights/activations (int8: full integer, calibrated on training images)")
    parser.add_argument("--out", help="export folder (default: RUN_DIR/export/saved_model or tflite_<quantize>)")
    parser.add_argument("--force", action="store_true", help="replace an existing export folder")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the comparison with the Keras model on held-out images")
    parser.add_argument("--data-root", help="dataset folder for verification and int8 calibration "
                                            "(default: the run's config data.root)")
    parser.add_argument("--split", default="test", choices=("test", "val"), help="held-out split to verify on")
    parser.add_argument("--limit", type=int, default=None, help="verify on at most N images (default: all)")
    parser.add_argument("--calibration-samples", type=int, default=None,
                        help="training images for int8 calibration (default 200)")
    parser.add_argument("--int8-per-channel", action="store_true",
                        help="int8: per-channel weight scales (more accurate on some models, ~1/2.8 instead of "
                             "~1/3.5 of the float32 size)")
    parser.add_argument("--int8-split-hard-swish", action="store_true", default=None,
                        help="int8: write hard swish as (x/6)*relu6(x+3) so XNNPACK runs the whole graph "
                             "(faster; costs top-1 agreement unless the run was tuned for it with "
                             "`finetune-int8 --split-hard-swish`, whose export splits by default)")
    parser.add_argument("--int8-all-ops", dest="int8_float_ops", action="store_false",
                        help="int8: quantize every op, the softmaxes and the image's first convolution too "
                             "(by default those stay float32: XNNPACK has no int8 softmax, and its int8 "
                             "3-channel convolution is slow on x86)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from skinkeras.export.verify import summary_line
    from skinkeras.runs import export_run

    # --int8-all-ops is passed only when given: exporters without int8 (two-stage) refuse options
    # that were set, and its default (float softmaxes and stem) is the int8 exporter's own.
    int8_all_ops = {} if args.int8_float_ops else {"int8_float_ops": False}
    result = export_run(args.run_dir, args.format, quantize=args.quantize, out_dir=args.out, force=args.force,
                        verify=args.verify, data_root=args.data_root, split=args.split, limit=args.limit,
                        calibration_samples=args.calibration_samples,
                        int8_per_channel=args.int8_per_channel, int8_split_hard_swish=args.int8_split_hard_swish,
                        **int8_all_ops)
    what = "SavedModel" if result["format"] == "saved_model" else f"TFLite {result['quantize']}"
    print(f"{what}: {result['path']} ({result['size_bytes'] / 1e6:.2f} MB)")
    if result["model_card"]:
        print(f"model card: {result['model_card']}")
    verification = result["verification"]
    if verification is None:
        print("not verified (--no-verify)")
        return 0
    print(summary_line(verification))
    return 0 if verification["passed"] else 1
