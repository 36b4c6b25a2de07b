"""`skinkeras predict MODEL IMAGE...` or `--csv IN.csv --out OUT.csv`: class probabilities from a run, a
SavedModel or a .tflite."""

from __future__ import annotations

from pathlib import Path

from skinkeras.errors import SkinkerasError


# Per-case inputs besides the image that some tasks' predictors take (`Predictor.extra_inputs`):
# `--<name> FILE` reaches the predictor as `predict(..., <name>=FILE)`; a predictor that does not
# take it refuses it. A new one is a line here (or `--input NAME=FILE`, without a line).
EXTRA_INPUTS = {
    "eis": "the lesion's EIS spectra (.npy complex (n, 10, 35)) for an EIS run (paper 000); "
           "alone (no image) for an EIS-only deployed row",
    "clinical": "the case's clinical (macroscopic) photograph for a fusion run (paper 004); without it, "
                "the model trained without the clinical image predicts",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="class probabilities for images (run, SavedModel or .tflite)")
    parser.add_argument("model", help="a run directory, a SavedModel folder or a .tflite file")
    parser.add_argument("images", nargs="*", help="image files (any size)")
    parser.add_argument("--image", metavar="FILE", action="append", default=[], dest="image_options",
                        help="an image file (as a positional argument; the dermoscopic one of a fusion case)")
    parser.add_argument("--csv", metavar="IN.csv",
                        help="batch prediction: a CSV with a column image (path, absolute or relative to the CSV) "
                             "and optional age, sex, site; writes --out OUT.csv, one row per input row")
    parser.add_argument("--out", metavar="OUT.csv", help="with --csv: image, top_class, prob_<class>..., error")
    parser.add_argument("--batch-size", type=int, default=32, help="with --csv: images per model call")
    parser.add_argument("--age", type=float, default=None, help="years, 0..120 (default: unknown)")
    parser.add_argument("--sex", default=None, help="female, male or unknown (default: unknown)")
    parser.add_argument("--site", default=None, help="anatomical site from the run's vocabulary (default: unknown)")
    for name, help_text in EXTRA_INPUTS.items():
        parser.add_argument(f"--{name}", metavar="FILE", dest=f"extra_{name}", default=None, help=help_text)
    parser.add_argument("--input", metavar="NAME=FILE", action="append", default=[], dest="extra_inputs",
                        help="another per-case input of the run's model (as --NAME FILE); repeatable")
    parser.add_argument("--meta", metavar="NAME=VALUE", action="append", default=[], dest="meta_fields",
                        help="a metadata field beyond age / sex / site that the run's model reads (a fusion run "
                             "on derm7pt: elevation=flat|palpable|nodular); repeatable")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--heatmap", metavar="OUT.png",
                        help="write the attention map (or Grad-CAM) overlay; OUT_<image>.png for several images")
    parser.set_defaults(func=run)


def heatmap_paths(out, images) -> list[Path]:
    """OUT.png for one image, OUT_<image stem>.png for several (OUT_<stem>_<n>.png, n the image's
    position from 1, where two images share a stem). Never an input image's path, never one path twice."""
    out = Path(out)
    if len(images) == 1:
        paths = [out]
    else:
        suffix = out.suffix or ".png"
        stems = [Path(image).stem for image in images]
        shared = {stem for stem in stems if stems.count(stem) > 1}
        paths = [out.with_name(f"{out.stem}_{stem}{f'_{k}' if stem in shared else ''}{suffix}")
                 for k, stem in enumerate(stems, 1)]
    inputs = {Path(image).resolve(): image for image in images}
    for path in paths:
        if path.resolve() in inputs:
            raise SkinkerasError(f"--heatmap {out} would overwrite the input image {inputs[path.resolve()]}; "
                                 "choose another path")
    if len({p.resolve() for p in paths}) < len(paths):  # e.g. OUT_x_1.png given as an image stem too
        raise SkinkerasError(f"--heatmap {out}: two images would share a heatmap file; choose another name")
    return paths


def extra_inputs(args) -> dict[str, str]:
    """{name: value} of the per-case inputs given (`--eis FILE`, `--input NAME=FILE`, `--meta NAME=VALUE`)."""
    extra = {name: getattr(args, f"extra_{name}") for name in EXTRA_INPUTS
             if getattr(args, f"extra_{name}", None) is not None}
    pairs = [("--input", "NAME=FILE", item) for item in getattr(args, "extra_inputs", None) or []]
    pairs += [("--meta", "NAME=VALUE", item) for item in getattr(args, "meta_fields", None) or []]
    for option, form, item in pairs:
        name, sep, value = item.partition("=")
        name = name.strip().lstrip("-")
        if not sep or not name or not value:
            raise SkinkerasError(f"{option} takes {form}. Received: {item!r}")
        if name in extra:
            raise SkinkerasError(f"--{name} given twice")
        extra[name] = value
    return extra


def run(args) -> int:
    args.images = list(args.images) + list(getattr(args, "image_options", None) or [])
    extra = extra_inputs(args)
    if args.csv:
        if extra:
            raise SkinkerasError(f"--{next(iter(extra))} is for image arguments (one case), not --csv")
        return run_csv(args)
    if args.out:
        raise SkinkerasError("--out goes with --csv IN.csv (batch prediction)")
    if not args.images and not extra:
        raise SkinkerasError("give image files, or --csv IN.csv --out OUT.csv")
    if extra and len(args.images) > 1:
        raise SkinkerasError(f"--{next(iter(extra))} belongs to one case: give one image with it "
                             f"(received {len(args.images)})")
    return run_images(args, extra)


def run_csv(args) -> int:
    """Batch prediction (`skinkeras.export.batch`): exit 1 when any row failed (its error column says why)."""
    import json

    from skinkeras.export.batch import predict_csv
    from skinkeras.runs import load_predictor

    if args.images:
        raise SkinkerasError(f"--csv takes the images from {args.csv}; drop the image arguments ({args.images[0]}, ...)")
    if not args.out:
        raise SkinkerasError("--csv IN.csv needs --out OUT.csv")
    for flag in ("age", "sex", "site", "heatmap"):
        if getattr(args, flag) is not None:
            raise SkinkerasError(f"--{flag} is for image arguments; with --csv give age, sex and site as columns"
                        if flag != "heatmap" else "--heatmap is for image arguments, not --csv")
    predictor = load_predictor(args.model)
    summary = predict_csv(predictor, args.csv, args.out, batch_size=args.batch_size, progress=True)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['rows']} rows: {summary['predicted']} predicted, {summary['failed']} failed "
              f"(see the error column) -> {summary['out']}")
    return 1 if summary["failed"] else 0


def run_images(args, extra: dict | None = None) -> int:
    import json

    from skinkeras.export.predictor import check_extra_inputs, check_metadata, read_image
    from skinkeras.runs import load_predictor

    extra = extra or {}
    heat_paths = heatmap_paths(args.heatmap, args.images) if args.heatmap else [None] * len(args.images)
    predictor = load_predictor(args.model)
    check_extra_inputs(predictor, extra)
    if not args.images and getattr(predictor, "needs_image", True):
        raise SkinkerasError(f"give image files: {args.model} predicts from images")
    if args.heatmap and predictor.keras_model is None:
        raise SkinkerasError(f"--heatmap needs a classification run directory (its Keras model); {args.model} is "
                             f"a {predictor.kind.replace('_', ' ')}" + (" export" if predictor.kind in ("saved_model", "tflite") else ""))
    age, sex, site = check_metadata(predictor.spec, args.age, args.sex, args.site)
    images = [(path, read_image(path)) for path in args.images]  # every file checked before any work
    if not images:  # a case of extra inputs alone (an EIS-only model)
        images, heat_paths = [(None, None)], [None]
    results = []
    for (path, pixels), heat_path in zip(images, heat_paths):
        probs = predictor.predict(pixels, age, sex, site, **extra)
        order = sorted(range(len(probs)), key=lambda i: -float(probs[i]))
        result = {"image": None if path is None else str(path), **{name: str(v) for name, v in extra.items()},
                  "top_class": predictor.class_names[order[0]],
                  "probabilities": {predictor.class_names[i]: round(float(probs[i]), 6) for i in order}}
        if getattr(predictor, "last_used", None):  # a fusion run: which row predicted (fallback without a clinical image)
            result["predicted_by"] = predictor.last_used
        if heat_path is not None:
            from skinkeras.explain.heatmap import explain, save_overlay

            heat = explain(predictor.keras_model, pixels, predictor.encode(age, sex, site))
            result["heatmap"] = str(save_overlay(heat_path, pixels, heat))
        results.append(result)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for result in results:
        case = result["image"] or ", ".join(f"--{name} {result[name]}" for name in extra)
        print(f"{case}: {result['top_class']}" + (f" (predicted by {result['predicted_by']})"
                                                   if "predicted_by" in result else ""))
        for name, p in result["probabilities"].items():
            print(f"  {name:<12} {p:.4f}")
        if "heatmap" in result:
            print(f"  heatmap: {result['heatmap']}")
    return 0
