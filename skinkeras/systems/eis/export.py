"""`skinkeras export EIS_RUN --format saved_model`: the deployed row of paper 000 as ONE SavedModel.

The deployed row (`eis.deploy_row`, or `row=`) is the mean of its fold models' probabilities
(`predict.EISPredictor`); the export holds every fold model and does, in the graph, what the Python
predictor does. Its `serve` signature (also `serving_default`) takes, for the row's inputs only:

    image     uint8[None, None, None, 3]   raw RGB, any size (one size per call); resized in the graph
                                           to eis.image_height x eis.image_width (area, rounded to
                                           whole grey levels as OpenCV's INTER_AREA uint8 resize)
    eis       float32[None, None, 700]     raw features (`skinkeras.data.eis.spectra_to_features`), any
                                           number of measurements: the first eis.max_measurements kept,
                                           zero-padded to it
    eis_mask  float32[None, None]          1.0 for a real measurement, 0.0 for padding

and returns `probabilities` float32[None, 2] (benign, malignant), `top_class` string[None] and
`class_names` string[2]. Inside: the eis.eval_crops crops on the grid (`data.crop_offsets`), each with
the lesion's measurements, through every fold model; mean over folds and crops. An ensemble row is
the max of its members' p(malignant).

Measurement order: the export is DETERMINISTIC and uses the measurements in the order given, one
order per lesion (every crop gets the same one); the Python predictor averages eis.eval_permutations
random orders (one per crop for a joint row), as the grid was evaluated. The two agree exactly when
the predictor keeps the given order (`predict(..., shuffle=False)`): that is what the export is
verified against, on lesions of the run's dataset, before it is written to --out.

TFLite: refused. Converting the SavedModel with builtin ops fails on the GRU's `TensorListReserve`
("requires element_shape to be static", TF 2.21, joint and GRU rows alike); Select TF ops would be
needed. The SVM row (scikit-learn) has no graph form.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError

MAX_ABS_DIFF = 1e-3  # float32 graph vs Keras, plus the in-graph resize vs OpenCV's (a grey level here and there)
VERIFY_LESIONS = 8


def _leaves(predictor) -> list:
    """The Keras rows of a deployed row (itself, or an ensemble's members)."""
    if predictor.members:
        return [leaf for member in predictor.members for leaf in _leaves(member)]
    if predictor.row.kind == "svm":
        raise SkinkerasError(f"row {predictor.row.id} is a scikit-learn SVM: it has no SavedModel form; "
                             f"deploy a Keras row (--set eis.deploy_row=...) to export")
    return [predictor]


def serving_archive(predictor):
    """A `keras.export.ExportArchive` with the `serve` endpoint of the module docstring."""
    import keras
    import tensorflow as tf

    from skinkeras.systems.eis.data import CLASS_NAMES, crop_offsets
    from skinkeras.systems.eis.model import NUM_FEATURES

    e = predictor.config.eis
    leaves = _leaves(predictor)
    uses_images, uses_eis = predictor.uses_images, predictor.uses_eis
    height, width, size, length = int(e.image_height), int(e.image_width), int(e.crop_size), int(e.max_measurements)
    if uses_images and not (height and width):
        raise SkinkerasError("the export resizes images to eis.image_height x eis.image_width, and this run keeps "
                             "each image's own size (0): it has no fixed size to crop on")
    offsets = crop_offsets(height, width, size, int(e.eval_crops)) if uses_images else []
    class_names = tf.constant(list(CLASS_NAMES))
    archive = keras.export.ExportArchive()
    for leaf in leaves:
        for model in leaf.models:
            archive.track(model)

    def prepare(image, eis, mask):
        inputs = {}
        if image is not None:
            x = tf.image.resize(tf.cast(image, tf.float32), [height, width], method="area")
            x = tf.clip_by_value(tf.round(x), 0.0, 255.0)
            crops = tf.stack([x[:, y: y + size, c: c + size] for y, c in offsets], axis=1)  # [B, C, S, S, 3]
            inputs["image"] = tf.reshape(crops, [-1, size, size, 3])
        if eis is not None:
            eis, mask = eis[:, :length], tf.cast(mask[:, :length], tf.float32)
            pad = length - tf.shape(eis)[1]
            eis = tf.pad(eis, [[0, 0], [0, pad], [0, 0]])
            mask = tf.pad(mask, [[0, 0], [0, pad]])
            eis = tf.ensure_shape(eis * mask[..., None], [None, length, NUM_FEATURES])
            mask = tf.ensure_shape(mask, [None, length])
            copies = max(1, len(offsets))
            inputs["eis"], inputs["eis_mask"] = tf.repeat(eis, copies, axis=0), tf.repeat(mask, copies, axis=0)
        return inputs

    def leaf_probabilities(leaf, inputs):
        copies = len(offsets) if leaf.row.uses_images else 1
        wanted = {name: inputs[name] for name in leaf.models[0].input}
        if not leaf.row.uses_images and uses_images:  # an EIS member of an ensemble with a CNN: one copy
            wanted = {name: value[::len(offsets)] for name, value in wanted.items()}
        probs = tf.add_n([tf.cast(m(wanted, training=False), tf.float32) for m in leaf.models]) / len(leaf.models)
        return tf.reduce_mean(tf.reshape(probs, [-1, copies, 2]), axis=1)

    def probabilities(image=None, eis=None, mask=None):
        inputs = prepare(image, eis, mask)
        parts = [leaf_probabilities(leaf, inputs) for leaf in leaves]
        if len(parts) == 1:
            return parts[0]
        p = tf.reduce_max(tf.stack([part[:, 1] for part in parts]), axis=0)
        return tf.stack([1.0 - p, p], axis=1)

    def outputs(probs):
        return {"probabilities": probs, "top_class": tf.gather(class_names, tf.argmax(probs, axis=-1)),
                "class_names": tf.identity(class_names)}

    image_spec = tf.TensorSpec([None, None, None, 3], tf.uint8, name="image")
    eis_specs = [tf.TensorSpec([None, None, NUM_FEATURES], tf.float32, name="eis"),
                 tf.TensorSpec([None, None], tf.float32, name="eis_mask")]
    if uses_images and uses_eis:
        def serve(image, eis, eis_mask):
            return outputs(probabilities(image, eis, eis_mask))
        signature = [image_spec, *eis_specs]
    elif uses_images:
        def serve(image):
            return outputs(probabilities(image=image))
        signature = [image_spec]
    else:
        def serve(eis, eis_mask):
            return outputs(probabilities(eis=eis, mask=eis_mask))
        signature = eis_specs
    archive.add_endpoint(name="serve", fn=serve, input_signature=signature)
    return archive


def export_eis(run_dir, fmt: str = "saved_model", *, out_dir=None, force: bool = False, verify: bool = True,
               data_root=None, split: str = "test", limit: int | None = None, row: str | None = None,
               **options) -> dict:
    """Exports the deployed row; returns {"path", "format", "quantize", "size_bytes", "verification",
    "model_card"} like the other exporters (no model card: the card reads a classification run)."""
    from skinkeras.export.serving import export_target, place_export, prepare_out_dir, write_sidecar_files
    from skinkeras.files import write_json
    from skinkeras.systems.eis.predict import EISPredictor
    from skinkeras.systems.eis.run_files import EISRun

    run = EISRun(Path(getattr(run_dir, "path", run_dir)))
    if fmt != "saved_model":
        raise SkinkerasError(f"an EIS run exports as --format saved_model (the fold models, crops and measurement "
                             f"mask in one graph). TFLite is not supported: the masked GRU does not convert to builtin "
                             f"ops (its TensorList needs a static element shape; tried with TF 2.21). "
                             f"Received: --format {fmt}")
    unused = {key: value for key, value in options.items() if value not in (None, False, "float32")}
    if unused:
        raise SkinkerasError(f"{', '.join(sorted(unused))}: not options of an EIS SavedModel export")
    if split not in ("test", "all"):
        raise SkinkerasError(f"an EIS export is verified on lesions of the run's dataset (no held-out split). "
                             f"Received: --split {split}")
    out_dir = Path(out_dir) if out_dir else run.export_dir("saved_model")
    if out_dir.exists() and not force:
        raise SkinkerasError(f"{out_dir} exists; choose another path with --out or pass --force to replace it")
    predictor = EISPredictor(run.path, row)
    archive = serving_archive(predictor)
    partial = prepare_out_dir(out_dir, force=force)
    archive.write_out(str(partial), verbose=False)
    e = predictor.config.eis
    info = {"run_dir": str(run.path.resolve()), "task": "eis", "deployed": predictor.describe(),
            "class_names": list(predictor.class_names), "inputs": signature_description(predictor),
            "measurement_order": "as given, one order per lesion (deterministic); the Python predictor "
                                 f"averages {e.eval_permutations} random orders"}
    write_sidecar_files(partial, predictor.spec, dict(info, format="saved_model", quantize=None))
    encoding = json.loads((partial / "metadata_encoding.json").read_text())
    encoding.update(input_size=[e.crop_size, e.crop_size], image=info["inputs"].get("image"),
                    eis=info["inputs"].get("eis"), eis_mask=info["inputs"].get("eis_mask"))
    (partial / "metadata_encoding.json").write_text(json.dumps(encoding, indent=2) + "\n")
    size = json.loads((partial / "export.json").read_text())["size_bytes"]
    target = out_dir
    result = {"path": str(target), "format": "saved_model", "quantize": None, "size_bytes": size,
              "verification": None, "model_card": None}
    if verify:
        verification = verify_against_predictor(partial, predictor, data_root=data_root, limit=limit)
        target = export_target(out_dir, verification)
        verification["export"] = result["path"] = str(target)
        write_json(partial / "verification.json", verification)
        result["verification"] = verification
    if not place_export(partial, target, out_dir):
        result["replaced"] = False
    return result


def signature_description(predictor) -> dict:
    e = predictor.config.eis
    out = {}
    if predictor.uses_images:
        out["image"] = (f"uint8 [B, H, W, 3] raw RGB, any size; resized in the graph to {e.image_height} x "
                        f"{e.image_width}, {e.eval_crops} crops of {e.crop_size} on a grid, averaged")
    if predictor.uses_eis:
        out["eis"] = (f"float32 [B, N, 700] raw features (350 |Z| then 350 arg Z per measurement); the first "
                      f"{e.max_measurements} kept")
        out["eis_mask"] = "float32 [B, N]: 1.0 real measurement, 0.0 padding"
    return out


def export_inputs(predictor, pixels, features) -> dict:
    """The signature's keyword arguments for one lesion (uint8 image, (n, 700) features)."""
    import tensorflow as tf

    inputs = {}
    if predictor.uses_images:
        inputs["image"] = tf.constant(np.asarray(pixels, np.uint8)[None])
    if predictor.uses_eis:
        inputs["eis"] = tf.constant(np.asarray(features, np.float32)[None])
        inputs["eis_mask"] = tf.ones([1, len(features)], tf.float32)
    return inputs


def verify_against_predictor(export_path, predictor, *, data_root=None, limit: int | None = None) -> dict:
    """The SavedModel and `EISPredictor(shuffle=False)` on up to `limit` (8) lesions of the run's
    dataset (sorted ids, whole images, every measurement given: the graph keeps the first T)."""
    import tensorflow as tf

    from skinkeras.data.eis import load_eis
    from skinkeras.data.images import read_image_rgb
    from skinkeras.export.verify import compare_predictions
    from skinkeras.systems.eis.data import one_lesion
    from skinkeras.systems.eis.predict import read_eis_features

    root = data_root or predictor.config.data.root
    try:
        table = load_eis(root)
    except SkinkerasError as error:
        raise SkinkerasError(f"verifying the export needs lesions of the run's dataset ({error}): pass "
                             f"--data-root DIR, or --no-verify") from None
    samples = table.samples.sort_values("image_id")
    if predictor.uses_images:
        samples = samples[samples["image_path"].astype(str).str.len() > 0]
    samples = samples.head(limit or VERIFY_LESIONS)
    if not len(samples):
        raise SkinkerasError(f"no lesion under {root} has what row {predictor.row.id} needs: pass --data-root DIR")
    serve = tf.saved_model.load(str(export_path)).signatures["serving_default"]
    python, exported, labels = [], [], []
    for lesion in samples.itertuples(index=False):
        pixels = read_image_rgb(lesion.image_path) if predictor.uses_images else None
        features = read_eis_features(lesion.eis_path) if predictor.uses_eis else None
        lesion_arrays = one_lesion(predictor.resize(pixels) if pixels is not None else None, features)
        python.append(predictor.predict_lesion(lesion_arrays, shuffle=False))
        exported.append(serve(**export_inputs(predictor, pixels, features))["probabilities"].numpy()[0])
        labels.append(1 if str(lesion.label) in ("malignant", "melanoma") else 0)
    result = compare_predictions("saved_model", np.stack(python), np.stack(exported), labels, predictor.class_names)
    failures = [f for f in result["failures"] if not f.startswith("max |dp|")]
    if not result["max_abs_diff"] <= MAX_ABS_DIFF:
        failures.append(f"max |dp| {result['max_abs_diff']:.3g} > {MAX_ABS_DIFF:g}")
    result.update(kind="eis saved_model", thresholds={"max_abs_diff": MAX_ABS_DIFF}, failures=failures,
                  passed=not failures,
                  compared_with="the Python predictor (EISPredictor, measurements in the given order)",
                  row=predictor.row.id, lesions=[str(i) for i in samples["image_id"]], export=str(export_path),
                  run=str(predictor.run.path), split="dataset")
    return result

