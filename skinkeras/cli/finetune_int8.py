"""`skinkeras finetune-int8 RUN_DIR --out NEW_RUN`: quantization-aware fine-tuning for int8 export."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune-int8",
        help="fine-tune a trained run with int8 rounding simulated, into a new run (for int8 TFLite export)",
        description="Fine-tunes RUN_DIR's best model for a few epochs with int8 activation rounding "
                    "simulated (BatchNormalization frozen), so that its full-integer TFLite export agrees "
                    "with it. The new run keeps the source's config and lesion split; evaluate and export "
                    "it like any run.")
    parser.add_argument("run_dir", help="a finished run directory written by `skinkeras train`")
    parser.add_argument("--out", required=True, help="the new run directory (must not exist or be empty)")
    parser.add_argument("--epochs", type=int, default=16, help="fine-tuning epochs (default 16)")
    parser.add_argument("--learning-rate", type=float, default=2e-5, help="Adam learning rate (default 2e-5)")
    parser.add_argument("--simulate-bits", type=int, default=8,
                        help="bits of the simulated rounding (default 8; 7 tunes for twice the int8 rounding noise, "
                             "which measured no better on MobileNetV3Small)")
    parser.add_argument("--split-hard-swish", action="store_true",
                        help="tune for the int8 export's split hard swish (faster on XNNPACK); the export then "
                             "uses it")
    parser.add_argument("--data-root", help="dataset folder (default: the run's config data.root)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import json

    from skinkeras.systems.classification.finetune_int8 import (
        finetune_quantization_aware,
    )

    summary = finetune_quantization_aware(args.run_dir, args.out, epochs=args.epochs,
                                          learning_rate=args.learning_rate,
                                          simulate_bits=args.simulate_bits,
                                          split_hard_swish=args.split_hard_swish, data_root=args.data_root)
    print(json.dumps(summary, indent=2))
    print(f"run directory: {args.out}")
    print(f"next: skinkeras evaluate {args.out} --data-root DATA, then "
          f"skinkeras export {args.out} --format tflite --quantize int8 (it uses the tuned ranges)")
    return 0
