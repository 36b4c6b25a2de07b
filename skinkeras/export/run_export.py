"""`skinkeras export RUN_DIR`: a run's best model as a serving SavedModel or a TFLite model,
verified against the Keras model on real held-out images, with a model card.

Layout written (default under RUN_DIR/export/):

    saved_model/        SavedModel (`serve` = `serving_default`: raw uint8 images + age/sex/site)
    tflite_<quantize>/  model.tflite (fixed [1, S, S, 3] float image + [1, F] metadata vector)
    each with           labels.txt, metadata_encoding.json, export.json, verification.json,
                        MODEL_CARD.md
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from skinkeras.errors import SkinkerasError

FORMATS = ("saved_model", "tflite")
STAGING_SUFFIX = ".staging"  # the new export while it is written and verified


def default_out_dir(run_dir, fmt: str, quantize: str = "float32") -> Path:
    from skinkeras.engine.run_directory import as_run

    return as_run(run_dir).export_dir(fmt, quantize)


def export_run(run_dir, fmt: str = "saved_model", *, quantize: str = "float32", out_dir=None,
               force: bool = False, verify: bool = True, data_root=None, split: str = "test",
               limit: int | None = None, calibration_samples: int | None = None, model=None,
               int8_per_channel: bool = False, int8_split_hard_swish: bool | None = None,
               int8_float_ops: bool = True) -> dict:
    """Exports the run's best model; returns {"path", "format", "quantize", "size_bytes",
    "verification" (dict or None), "model_card" (path or None)}.

    `data_root` (default: the run's config data.root) holds the images for int8 calibration (the
    training split) and verification (`split`, at most `limit` images). `int8_per_channel`,
    `int8_split_hard_swish` and `int8_float_ops` are `skinkeras.export.tflite.convert`'s int8 options (see its docstring
    for what each costs). A run fine-tuned by `skinkeras finetune-int8` exports int8 with the
    activation ranges it was tuned for (its int8_ranges.json), and `int8_split_hard_swish=None`
    (the default) means: split when the run was tuned split, else not.
    """
    from skinkeras.engine.run_directory import load_run_model
    from skinkeras.export.litert import MODEL_FILE
    from skinkeras.export.samples import default_data_root
    from skinkeras.export.serving import (
        EXPORT_INFO_FILE,
        VERIFICATION_FILE,
        check_out_dir,
        export_serving_saved_model,
        export_target,
        load_run_spec,
        place_export,
    )
    from skinkeras.files import write_json
    from skinkeras.export.tflite import (
        DEFAULT_CALIBRATION_SAMPLES,
        QUANTIZATIONS,
        export_tflite,
        representative_dataset,
    )
    from skinkeras.export.verify import verify_export
    from skinkeras.quantization.fake_quant import (
        load_fake_quant_ranges,
        uses_split_hard_swish,
    )

    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise SkinkerasError(f"--format must be one of {', '.join(FORMATS)}. Received: {fmt!r}")
    if fmt == "tflite" and quantize not in QUANTIZATIONS:
        raise SkinkerasError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}. Received: {quantize!r}")
    spec = load_run_spec(run_dir)
    final_dir = check_out_dir(Path(out_dir) if out_dir else default_out_dir(run_dir, fmt, quantize), force=force)
    # Everything is written and verified in a staging sibling; only a verified export replaces the
    # folder named by --out, so a failed or killed verification leaves the previous one in place.
    out_dir = final_dir.with_name(final_dir.name + STAGING_SUFFIX)
    if out_dir.exists():
        shutil.rmtree(out_dir)  # left by an interrupted export
    model = model or load_run_model(run_dir)
    info = {"run_dir": str(run_dir.resolve()), "image_size": spec.image_size,
            "class_names": list(spec.class_names), "metadata": spec.metadata is not None}
    if fmt == "saved_model":
        path = export_serving_saved_model(model, spec, out_dir, info=info)
        size = json.loads((path / EXPORT_INFO_FILE).read_text())["size_bytes"]  # without the sidecars
        quantize = None
    else:
        representative = None
        if quantize == "int8":
            root = data_root or default_data_root(run_dir)
            representative = representative_dataset(
                run_dir, spec, root, samples=calibration_samples or DEFAULT_CALIBRATION_SAMPLES)
            info["calibration"] = {"split": "train", "samples": calibration_samples or DEFAULT_CALIBRATION_SAMPLES}
            ranges = load_fake_quant_ranges(run_dir)
            if int8_split_hard_swish is None:
                int8_split_hard_swish = uses_split_hard_swish(ranges)
            info["int8_options"] = {"per_channel": int8_per_channel, "split_hard_swish": int8_split_hard_swish,
                                    "float_ops": int8_float_ops,
                                    "quantization_aware_ranges": len(ranges) if ranges else 0}
            options = {"per_channel": int8_per_channel, "split_hard_swish": int8_split_hard_swish,
                       "fake_quant_ranges": ranges, "float_ops": int8_float_ops}
        else:
            options = {}
        path = export_tflite(model, spec, out_dir, quantize, representative=representative, info=info, **options)
        size = (path / MODEL_FILE).stat().st_size
    verification = None
    if verify:
        verification = verify_export(path, run_dir, data_root=data_root, split=split, limit=limit,
                                     model=model, write=False)
    target = export_target(final_dir, verification)
    result = {"path": str(target), "format": fmt, "quantize": quantize, "size_bytes": size,
              "verification": verification, "model_card": None}
    if verification is not None:
        model_file = Path(verification["export"])
        verification["export"] = str(target / model_file.relative_to(path)) if model_file != path else str(target)
        write_json(path / VERIFICATION_FILE, verification)
        verification["written_to"] = str(target / VERIFICATION_FILE)
    result["model_card"] = str(target / Path(_model_card(run_dir, path, result)).name)
    if not place_export(path, target, final_dir):
        result["replaced"] = False
    return result


def _model_card(run_dir, out_dir, result: dict):
    """MODEL_CARD.md beside the export (`skinkeras.export.model_card`)."""
    from skinkeras.export.model_card import write_model_card

    files = sorted(p.name for p in Path(out_dir).iterdir())
    verification = result["verification"]
    if verification is not None:  # the card shows plain values: the verdict and the figures
        verification = {key: value for key, value in verification.items()
                        if key in ("passed", "n", "split", "max_abs_diff", "output_std", "top1_agreement", "top1_agreement_ci95",
                                   "balanced_accuracy_keras",
                                   "balanced_accuracy_export", "balanced_accuracy_change", "failures")}
    export_info = {"format": result["format"], "quantization": result["quantize"] or "none (float32)",
                   "files": files, "size_bytes": result["size_bytes"], "verification": verification}
    return str(write_model_card(run_dir, out_dir, export_info=export_info))
