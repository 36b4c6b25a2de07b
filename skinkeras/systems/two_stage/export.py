"""`skinkeras export TWO_STAGE_RUN --format saved_model`: the whole deployed system as ONE SavedModel.

Its `serve` signature (also `serving_default`) takes what an app has and runs every stage in the
graph:

    images         uint8[None, None, None, 3]   raw RGB, any size (one size per call)
    -> probabilities  float32[None, C]           the deployed ensemble's probabilities
       top_class      string[None]
       class_names    string[C]
       lesion_box     int32[None, 4]             (top, left, bottom, right) of the crop, in pixels
       lesion_found   bool[None]                 False: no lesion segmented, the whole image was used

Segmentation, the lesion crop (`graph_crop`), the members' input scaling and the ensemble (LC head,
average or max) are graph ops; it loads with `tf.saved_model.load` alone. It is verified against
the Python pipeline (`TwoStagePredictor`, the code the members were trained and evaluated with) on
the run's held-out test images: max |dp| and top-1 agreement go to verification.json and the model
card.
"""

from __future__ import annotations

import json

import numpy as np

from skinkeras.errors import SkinkerasError
from skinkeras.systems.two_stage.run_files import TwoStageRun


MAX_ABS_DIFF = 1e-2  # the crop's resampling differs from OpenCV's by a grey level here and there
MIN_AGREEMENT = 0.98


def serving_archive(predictor):
    """A `keras.export.ExportArchive` with the `serve` endpoint of the module docstring."""
    import keras
    import tensorflow as tf

    from skinkeras.export.serving import preprocess_images
    from skinkeras.systems.two_stage.graph_crop import crop_lesion

    deployed = predictor.deployed
    class_names = tf.constant(list(deployed.class_names))
    crop_size = predictor.spec.image_size
    margin = float(predictor.config.two_stage.crop_margin)
    members = predictor.members
    archive = keras.export.ExportArchive()
    for model, *_ in members:
        archive.track(model)
    segmenter = predictor.segmenter
    if segmenter is not None:
        archive.track(segmenter)
    lc_head = getattr(deployed.ensemble, "model", None)
    if lc_head is not None:
        archive.track(lc_head)

    def combine(probs):
        if deployed.name == "lc_head":
            return tf.cast(lc_head({f"model_{i}": p for i, p in enumerate(probs)}, training=False), tf.float32)
        stacked = tf.stack(probs)
        if deployed.name == "average":
            return tf.reduce_mean(stacked, axis=0)
        top = tf.reduce_max(stacked, axis=0)
        return top / tf.reduce_sum(top, axis=1, keepdims=True)

    def serve(images):
        if segmenter is not None:
            crops, boxes, found = tf.map_fn(
                lambda image: crop_lesion(image, segmenter, predictor.segmenter_size, crop_size, margin),
                images, fn_output_signature=(tf.TensorSpec([crop_size, crop_size, 3], tf.float32),
                                             tf.TensorSpec([4], tf.int32), tf.TensorSpec([], tf.bool)))
        else:
            crops = tf.cast(images, tf.float32)
            shape = tf.shape(images)
            boxes = tf.tile(tf.stack([0, 0, shape[1], shape[2]])[None], [shape[0], 1])
            found = tf.zeros([shape[0]], tf.bool)
        probs = []
        for model, size, color_constancy, order in members:
            scores = model({"image": preprocess_images(crops, size, color_constancy=color_constancy)}, training=False)
            probs.append(tf.gather(tf.cast(scores, tf.float32), order, axis=1))
        probabilities = combine(probs)
        return {
            "probabilities": probabilities,
            "top_class": tf.gather(class_names, tf.argmax(probabilities, axis=-1)),
            "class_names": tf.identity(class_names),
            "lesion_box": boxes,
            "lesion_found": found,
        }

    archive.add_endpoint(name="serve", fn=serve,
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    return archive


def export_two_stage(run_dir, fmt: str = "saved_model", *, out_dir=None, force: bool = False, verify: bool = True,
                     data_root=None, split: str = "test", limit: int | None = None, **options) -> dict:
    """Exports the deployed system; returns {"path", "format", "quantize", "size_bytes",
    "verification", "model_card"} like the classification exporter."""
    from pathlib import Path

    from skinkeras.export.serving import (
        export_target,
        place_export,
        prepare_out_dir,
        write_sidecar_files,
    )
    from skinkeras.files import write_json
    from skinkeras.systems.two_stage.predict import TwoStagePredictor

    run = TwoStageRun(run_dir)
    if fmt != "saved_model":
        raise SkinkerasError(f"a two-stage run exports as --format saved_model (segmentation, crop and five "
                             f"models in one graph; no TFLite form). Received: --format {fmt}")
    unused = {key: value for key, value in options.items() if value not in (None, False, "float32")}
    if unused:
        raise SkinkerasError(f"{', '.join(sorted(unused))}: not options of a two-stage SavedModel export")
    out_dir = Path(out_dir) if out_dir else run.export_dir("saved_model")
    if out_dir.exists() and not force:
        raise SkinkerasError(f"{out_dir} exists; choose another path with --out or pass --force to replace it")
    predictor = TwoStagePredictor(run)
    partial = prepare_out_dir(out_dir, force=force)
    serving_archive(predictor).write_out(str(partial), verbose=False)
    info = {"run_dir": str(run.path.resolve()), "task": "two_stage", "deployed": predictor.deployed.describe(),
            "image_size": predictor.spec.image_size, "class_names": list(predictor.class_names),
            "input": "uint8 images of any size; segmentation and lesion crop inside the graph"}
    write_sidecar_files(partial, predictor.spec, dict(info, format="saved_model", quantize=None))
    size = json.loads((partial / "export.json").read_text())["size_bytes"]
    # Verified while still the `.partial` sibling: only an export that passes replaces an earlier
    # one at out_dir, so a failed or killed verification leaves that one in place (the failed
    # export is kept beside it for a look), as the classification exporter does.
    target = out_dir
    result = {"path": str(target), "format": "saved_model", "quantize": None, "size_bytes": size,
              "verification": None, "model_card": None}
    if verify:
        verification = verify_against_pipeline(partial, predictor, data_root=data_root, split=split, limit=limit)
        target = export_target(out_dir, verification)
        verification["export"] = result["path"] = str(target)
        write_json(partial / "verification.json", verification)
        result["verification"] = verification
    from skinkeras.export.model_card import write_model_card

    card = write_model_card(run.path, partial, export_info=_card_info(partial, result))
    result["model_card"] = str(target / Path(card).name)
    if not place_export(partial, target, out_dir):
        result["replaced"] = False
    return result


def verify_against_pipeline(export_path, predictor, *, data_root=None, split: str = "test",
                            limit: int | None = None) -> dict:
    """The SavedModel and the Python pipeline on the run's held-out images: max |dp|, agreement."""
    import tensorflow as tf

    from skinkeras.data.pipeline import read_image
    from skinkeras.engine.run_data import read_split
    from skinkeras.export.verify import compare_predictions
    from skinkeras.files import write_json
    from skinkeras.systems.two_stage.data import load_dataset_logged

    run, config = predictor.run, predictor.config
    root = data_root or config.data.root
    table = load_dataset_logged(config.data.dataset, root)
    wanted = {i for i, part in (read_split(run) or {}).items() if part == split}
    table = table.subset(table.samples["image_id"].isin(wanted))
    if limit and len(table) > limit:
        table = table.subset(table.samples.index[np.sort(np.random.default_rng(0).choice(len(table), limit, False))])
    if not len(table):
        raise SkinkerasError(f"none of the run's {split} images were found under {root}: pass --data-root DIR")
    serve = tf.saved_model.load(str(export_path)).signatures["serving_default"]
    python, exported, labels, found = [], [], [], []
    for row in table.samples.itertuples(index=False):
        pixels = read_image(row.image_path, dtype="uint8").numpy()
        python.append(predictor.predict(pixels))
        out = serve(images=tf.constant(pixels[None]))
        exported.append(out["probabilities"].numpy()[0])
        found.append(bool(out["lesion_found"].numpy()[0]))
        labels.append(int(row.label_index))
    result = compare_predictions("saved_model", np.stack(python), np.stack(exported), labels, predictor.class_names)
    failures = [f for f in result["failures"] if not f.startswith("max |dp|")]  # its own threshold below
    if not result["max_abs_diff"] <= MAX_ABS_DIFF and result["top1_agreement"] < MIN_AGREEMENT:
        failures.append(f"max |dp| {result['max_abs_diff']:.3g} > {MAX_ABS_DIFF:g} and top-1 agreement "
                        f"{result['top1_agreement']:.2%} < {MIN_AGREEMENT:.0%}")
    result.update(kind="two_stage saved_model", thresholds={"max_abs_diff": MAX_ABS_DIFF, "or_top1_agreement": MIN_AGREEMENT},
                  failures=failures, passed=not failures, compared_with="the Python pipeline (TwoStagePredictor)",
                  lesion_found_in_graph=int(sum(found)), export=str(export_path), run=str(run.path), split=split)
    write_json(export_path / "verification.json", result)
    return result


def _card_info(path, result) -> dict:
    verification = result["verification"]
    if verification is not None:
        verification = {key: verification[key] for key in
                        ("passed", "n", "split", "compared_with", "max_abs_diff", "output_std", "top1_agreement",
                         "top1_agreement_ci95", "balanced_accuracy_keras", "balanced_accuracy_export", "failures")
                        if key in verification}
    return {"format": "saved_model", "quantization": "none (float32)",
            "files": sorted(p.name for p in path.iterdir()), "size_bytes": result["size_bytes"],
            "verification": verification}
