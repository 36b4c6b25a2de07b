"""`skinkeras predict MODEL IMAGE...`: class probabilities from a run, a SavedModel or a .tflite."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="class probabilities for images (run, SavedModel or .tflite)")
    parser.add_argument("model", help="a run directory, a SavedModel folder or a .tflite file")
    parser.add_argument("images", nargs="+", help="image files (any size)")
    parser.add_argument("--age", type=float, default=None, help="years, 0..120 (default: unknown)")
    parser.add_argument("--sex", default=None, help="female, male or unknown (default: unknown)")
    parser.add_argument("--site", default=None, help="anatomical site from the run's vocabulary (default: unknown)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--heatmap", metavar="OUT.png",
                        help="write the attention map (or Grad-CAM) overlay; OUT_<image>.png for several images")
    parser.set_defaults(func=run)


def heatmap_paths(out, images) -> list[Path]:
    """OUT.png for one image, OUT_<image stem>.png for several."""
    out = Path(out)
    if len(images) == 1:
        return [out]
    suffix = out.suffix or ".png"
    return [out.with_name(f"{out.stem}_{Path(image).stem}{suffix}") for image in images]


def run(args) -> int:
    import json

    from skinkeras.errors import SkinkerasError
    from skinkeras.export.predictor import check_metadata, read_image
    from skinkeras.runs import load_predictor

    predictor = load_predictor(args.model)
    if args.heatmap and predictor.keras_model is None:
        raise SkinkerasError(f"--heatmap needs a classification run directory (its Keras model); {args.model} is "
                             f"a {predictor.kind.replace('_', ' ')}" + (" export" if predictor.kind in ("saved_model", "tflite") else ""))
    age, sex, site = check_metadata(predictor.spec, args.age, args.sex, args.site)
    images = [(path, read_image(path)) for path in args.images]  # every file checked before any work
    heat_paths = heatmap_paths(args.heatmap, args.images) if args.heatmap else [None] * len(images)
    results = []
    for (path, pixels), heat_path in zip(images, heat_paths):
        probs = predictor.predict(pixels, age, sex, site)
        order = sorted(range(len(probs)), key=lambda i: -float(probs[i]))
        result = {"image": str(path), "top_class": predictor.class_names[order[0]],
                  "probabilities": {predictor.class_names[i]: round(float(probs[i]), 6) for i in order}}
        if heat_path is not None:
            from skinkeras.explain.heatmap import explain, save_overlay

            heat = explain(predictor.keras_model, pixels, predictor.encode(age, sex, site))
            result["heatmap"] = str(save_overlay(heat_path, pixels, heat))
        results.append(result)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for result in results:
        print(f"{result['image']}: {result['top_class']}")
        for name, p in result["probabilities"].items():
            print(f"  {name:<12} {p:.4f}")
        if "heatmap" in result:
            print(f"  heatmap: {result['heatmap']}")
    return 0
