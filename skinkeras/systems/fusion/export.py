"""`skinkeras export FUSION_RUN --format saved_model`: the deployed row of paper 004 as ONE SavedModel.

The deployed row (`fusion.deploy_row`, or `row=`) is the mean of its fold models' probabilities
(`predict.FusionPredictor`); a row with the clinical tower carries its fallback row's fold models
too, and picks per case. Its `serve` signature (also `serving_default`) takes, for what the rows use:

    dermoscopic   uint8[None, None, None, 3]  raw RGB, any size (one size per call)
    clinical      uint8[None, None, None, 3]  raw RGB (any size, one per call); a case without one
                                              passes any image (zeros) and has_clinical = 0
    has_clinical  float32[None]               1.0: predicted with the clinical tower; 0.0: by the
                                              fallback row (the model trained without it)
    age           float32[None]               years, NaN when unknown
    sex, site     string[None]                as the run's vocabulary (metadata_encoding.json)
    <field>       string[None]                each extra metadata field (derm7pt: elevation)

and returns `probabilities` float32[None, C], `top_class` string[None], `predicted_by` string[None]
(the row that predicted each case) and `class_names` string[C]. Inside: the largest centred square of
each image, area-resized to fusion.image_size and rounded to whole grey levels (as the grid's OpenCV
INTER_AREA uint8 resize), the metadata vector in TensorFlow ops (`features.MetadataVector.encode_tf`),
every fold model, the mean. It is checked against the Python predictor on test cases of the run's
dataset before it is placed.

TFLite: refused (string metadata inputs and an optional second image; the SavedModel serves them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError

MAX_ABS_DIFF = 1e-3  # float32 graph vs Keras, plus the in-graph area resize vs OpenCV's (a grey level here and there)
VERIFY_CASES = 8


def _square_resize_tf(images, size: int):
    import tensorflow as tf

    shape = tf.shape(images)
    side = tf.minimum(shape[1], shape[2])
    top, left = (shape[1] - side) // 2, (shape[2] - side) // 2
    square = tf.cast(images[:, top:top + side, left:left + side], tf.float32)
    # As `data.square_resize`: area when shrinking, bilinear when enlarging.
    resized = tf.cond(side > size, lambda: tf.image.resize(square, [size, size], method="area"),
                      lambda: tf.image.resize(square, [size, size], method="bilinear"))
    return tf.clip_by_value(tf.round(resized), 0.0, 255.0)


def _leaf_probabilities(predictor, inputs):
    import tensorflow as tf

    wanted = {name: inputs[name] for name in predictor.models[0].input}
    return tf.add_n([tf.cast(m(wanted, training=False), tf.float32) for m in predictor.models]) / len(predictor.models)


def serving_archive(predictor):
    """A `keras.export.ExportArchive` with the `serve` endpoint of the module docstring."""
    import keras
    import tensorflow as tf

    if predictor.row.kind == "forest":
        raise SkinkerasError(f"row {predictor.row.id} is a scikit-learn random forest: it has no SavedModel form; "
                             f"deploy a network row (--set fusion.deploy_row=...) to export")
    size = int(predictor.config.fusion.image_size)
    vector = predictor.vector
    leaves = [predictor] + ([predictor.fallback] if predictor.fallback else [])
    uses_metadata = any(leaf.row.metadata for leaf in leaves)
    uses_dsc = any("dsc" in leaf.row.images for leaf in leaves)
    uses_clinical = predictor.row.uses_clinical
    archive = keras.export.ExportArchive()
    for leaf in leaves:
        for model in leaf.models:
            archive.track(model)
    class_names = tf.constant(list(predictor.class_names))
    names = [leaf.row.id for leaf in leaves]
    extras = list(vector.extras)

    def serve(**kwargs):
        inputs = {}
        if uses_dsc:
            inputs["dermoscopic"] = _square_resize_tf(kwargs["dermoscopic"], size)
        if uses_clinical:
            inputs["clinical"] = _square_resize_tf(kwargs["clinical"], size)
        if uses_metadata:
            inputs["metadata"] = vector.encode_tf(kwargs["age"], kwargs["sex"], kwargs["site"],
                                                  {f: kwargs[f] for f in extras})
        probabilities = _leaf_probabilities(predictor, inputs)
        which = tf.fill(tf.shape(probabilities)[:1], names[0])
        if uses_clinical and predictor.fallback is not None:
            present = kwargs["has_clinical"] > 0.5
            probabilities = tf.where(present[:, None], probabilities, _leaf_probabilities(predictor.fallback, inputs))
            which = tf.where(present, which, tf.fill(tf.shape(which), names[1]))
        return {"probabilities": probabilities, "top_class": tf.gather(class_names, tf.argmax(probabilities, axis=-1)),
                "predicted_by": which, "class_names": tf.identity(class_names)}

    specs = []
    if uses_dsc:
        specs.append(tf.TensorSpec([None, None, None, 3], tf.uint8, name="dermoscopic"))
    if uses_clinical:
        specs += [tf.TensorSpec([None, None, None, 3], tf.uint8, name="clinical"),
                  tf.TensorSpec([None], tf.float32, name="has_clinical")]
    if uses_metadata:
        specs += [tf.TensorSpec([None], tf.float32, name="age"), tf.TensorSpec([None], tf.string, name="sex"),
                  tf.TensorSpec([None], tf.string, name="site")]
        specs += [tf.TensorSpec([None], tf.string, name=field) for field in extras]
    arg_names = [spec.name for spec in specs]

    # ExportArchive needs positional arguments in the signature's order.
    def endpoint(*args):
        return serve(**dict(zip(arg_names, args)))

    archive.add_endpoint(name="serve", fn=endpoint, input_signature=specs)
    return archive


def signature_description(predictor) -> dict:
    size = predictor.config.fusion.image_size
    out = {"dermoscopic": f"uint8 [B, H, W, 3] raw RGB; largest centred square area-resized to {size}"}
    if predictor.row.uses_clinical:
        out["clinical"] = "uint8 [B, H, W, 3] raw RGB (zeros for a case without one)"
        out["has_clinical"] = f"float32 [B]: 1.0 with a clinical image, 0.0: predicted by {predictor.row.fallback}"
    if predictor.row.metadata or (predictor.fallback and predictor.fallback.row.metadata):
        out.update(age="float32 [B] years, NaN unknown", sex="string [B]: female, male, unknown",
                   site=f"string [B]: {', '.join(predictor.vector.sites)}")
        for field, vocabulary in predictor.vector.extras.items():
            out[field] = f"string [B]: {', '.join(vocabulary)}"
    return out


def export_inputs(predictor, pixels, clinical, age, sex, site, extras: dict) -> dict:
    """The signature's keyword arguments for one case."""
    import tensorflow as tf

    description = signature_description(predictor)
    inputs = {"dermoscopic": tf.constant(np.asarray(pixels, np.uint8)[None])}
    if "clinical" in description:
        present = clinical is not None
        inputs["clinical"] = tf.constant(np.asarray(clinical if present else np.zeros((8, 8, 3)), np.uint8)[None])
        inputs["has_clinical"] = tf.constant([1.0 if present else 0.0], tf.float32)
    if "age" in description:
        inputs.update(age=tf.constant([age], tf.float32), sex=tf.constant([sex]), site=tf.constant([site]))
        for field in predictor.vector.extras:
            inputs[field] = tf.constant([extras.get(field, "unknown")])
    return inputs


def verify_against_predictor(export_path, predictor, *, data_root=None, limit: int | None = None) -> dict:
    """The SavedModel and `FusionPredictor` on up to `limit` (8) test cases of the run's dataset,
    including cases without a clinical image when there are any."""
    import pandas as pd
    import tensorflow as tf

    from skinkeras.data.images import read_image_rgb
    from skinkeras.data.registry import load_dataset
    from skinkeras.engine.run_data import read_split
    from skinkeras.export.verify import compare_predictions

    config = predictor.config
    root = data_root or config.data.root
    try:
        table = load_dataset(config.data.dataset, root)
    except SkinkerasError as error:
        raise SkinkerasError(f"verifying the export needs cases of the run's dataset ({error}): pass "
                             f"--data-root DIR, or --no-verify") from None
    split = read_split(predictor.run) or {}
    samples = table.samples[table.samples["image_id"].astype(str).map(split) == "test"].sort_values("image_id")
    count = limit or VERIFY_CASES
    if "clinical_path" in samples and (samples["clinical_path"].astype(str) == "").any():
        # A quarter of the cases without a clinical image: the fallback path is verified too.
        has = samples["clinical_path"].astype(str) != ""
        without = samples[~has].head(max(1, count // 4))
        samples = pd.concat([samples[has].head(count - len(without)), without])
    else:
        samples = samples.head(count)
    if not len(samples):
        raise SkinkerasError(f"no test case of the run's dataset under {root}: pass --data-root DIR")
    serve = tf.saved_model.load(str(export_path)).signatures["serving_default"]
    python, exported, labels, used = [], [], [], []
    for case in samples.to_dict("records"):
        pixels = read_image_rgb(case["image_path"])
        clinical_pixels = read_image_rgb(case["clinical_path"]) if case.get("clinical_path") else None
        sex, site = str(case.get("sex", "unknown")), str(case.get("site", "unknown"))
        site = site if site in predictor.vector.sites else "unknown"
        age = float(case.get("age", float("nan")))
        extras = {f: str(case.get(f, "unknown")).lower() for f in predictor.vector.extras}
        extras = {f: v if v in predictor.vector.extras[f] else "unknown" for f, v in extras.items()}
        python.append(predictor.predict(pixels, None if np.isnan(age) else age, sex, site, clinical=clinical_pixels,
                                        **extras))
        out = serve(**export_inputs(predictor, pixels, clinical_pixels, age, sex, site, extras))
        exported.append(out["probabilities"].numpy()[0])
        used.append(out["predicted_by"].numpy()[0].decode())
        if used[-1] != predictor.last_used:
            raise SkinkerasError(f"the export predicted case {case['image_id']} with {used[-1]}, the Python predictor "
                                 f"with {predictor.last_used}")
        labels.append(predictor.class_names.index(case["label"]))
    result = compare_predictions("saved_model", np.stack(python), np.stack(exported), labels, predictor.class_names)
    failures = [f for f in result["failures"] if not f.startswith("max |dp|")]
    if not result["max_abs_diff"] <= MAX_ABS_DIFF:
        failures.append(f"max |dp| {result['max_abs_diff']:.3g} > {MAX_ABS_DIFF:g}")
    result.update(kind="fusion saved_model", thresholds={"max_abs_diff": MAX_ABS_DIFF}, failures=failures,
                  passed=not failures, compared_with="the Python predictor (FusionPredictor)", row=predictor.row.id,
                  cases=[str(i) for i in samples["image_id"]], predicted_by=used, export=str(export_path),
                  run=str(predictor.run.path), split="test")
    return result


def export_fusion(run_dir, fmt: str = "saved_model", *, out_dir=None, force: bool = False, verify: bool = True,
                  data_root=None, split: str = "test", limit: int | None = None, row: str | None = None,
                  **options) -> dict:
    """Exports the deployed row; returns {"path", "format", "quantize", "size_bytes", "verification", "model_card"}."""
    from skinkeras.export.serving import export_target, place_export, prepare_out_dir, write_sidecar_files
    from skinkeras.files import write_json
    from skinkeras.systems.fusion.predict import FusionPredictor
    from skinkeras.systems.fusion.run_files import FusionRun

    run = FusionRun(Path(getattr(run_dir, "path", run_dir)))
    if fmt != "saved_model":
        raise SkinkerasError(f"a fusion run exports as --format saved_model (two images, one optional, and string "
                             f"metadata in one graph); TFLite is not supported. Received: --format {fmt}")
    unused = {key: value for key, value in options.items() if value not in (None, False, "float32")}
    if unused:
        raise SkinkerasError(f"{', '.join(sorted(unused))}: not options of a fusion SavedModel export")
    if split != "test":
        raise SkinkerasError(f"a fusion export is verified on the run's test cases. Received: --split {split}")
    out_dir = Path(out_dir) if out_dir else run.export_dir("saved_model")
    if out_dir.exists() and not force:
        raise SkinkerasError(f"{out_dir} exists; choose another path with --out or pass --force to replace it")
    predictor = FusionPredictor(run.path, row)
    archive = serving_archive(predictor)
    partial = prepare_out_dir(out_dir, force=force)
    archive.write_out(str(partial), verbose=False)
    info = {"run_dir": str(run.path.resolve()), "task": "fusion", "deployed": predictor.describe(),
            "class_names": list(predictor.class_names), "inputs": signature_description(predictor)}
    write_sidecar_files(partial, predictor.spec, dict(info, format="saved_model", quantize=None))
    encoding = json.loads((partial / "metadata_encoding.json").read_text())
    encoding.update(input_size=[predictor.config.fusion.image_size] * 2, inputs=info["inputs"],
                    metadata_vector=predictor.vector.to_config())
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
