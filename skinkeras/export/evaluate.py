"""An export's predictions on a dataset, without its run: what `skinkeras evaluate EXPORT` scores.

Everything comes from the export's own files: the classes (labels in metadata_encoding.json), the
input size and the metadata encoding. The dataset's classes may be some of the export's (a partial
label set: the others are reported absent). Metadata the export cannot encode is encoded as it
would be on a phone, as "unknown", and counted: sites outside the export's vocabulary by value,
and unknown ages / sexes / sites per field. Images are decoded with the evaluation pipeline's
decoder (TF's), so a float32 export scores as its run does on the same images; unreadable images
are left out and listed by id.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)


def export_description(path) -> dict:
    """{"path", "kind"} of an export: kind "saved_model", "tflite <quantization>", or with the
    task first for another task's export ("two_stage saved_model")."""
    import json

    from skinkeras.export.serving import EXPORT_INFO_FILE
    from skinkeras.export.verify import export_kind

    kind, model_path = export_kind(path)
    folder = model_path if model_path.is_dir() else model_path.parent
    info_path = folder / EXPORT_INFO_FILE
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    name = "saved_model" if kind == "saved_model" else f"tflite {kind}"
    task = info.get("task")
    if task and task != "classification":
        name = f"{task} {name}"
    return {"path": str(model_path), "kind": name}


def metadata_report(table, spec) -> dict:
    """What the export could not encode: sites outside its vocabulary ({value: images}) and, per
    field, how many images go in as "unknown"."""
    from skinkeras.data.metadata import UNKNOWN

    samples = table.samples
    if spec.metadata is None:
        return {"used": False}
    vocabulary = set(spec.metadata.sites)
    outside = Counter(site for site in samples["site"] if site not in vocabulary)
    return {
        "used": True,
        "sites_mapped_to_unknown": dict(sorted(outside.items())),
        "unknown": {"age": int(samples["age"].isna().sum()), "sex": int((samples["sex"] == UNKNOWN).sum()),
                    "site": int(sum(site == UNKNOWN or site not in vocabulary for site in samples["site"]))},
        "images": len(samples),
    }


def _read_pipeline_image(path):
    from skinkeras.data.pipeline import read_image

    return read_image(str(path), dtype="uint8").numpy()


def predict_table(predictor, table, *, batch_size: int = 32, progress: bool = False, model: str = "export"):
    """The export's `Predictions` of every readable image of `table`, and what was left out:
    (predictions, {"skipped_images": [{"image_id", "reason"}], "metadata": metadata_report})."""
    import sys

    from tqdm import tqdm

    from skinkeras.data.metadata import UNKNOWN
    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.export.batch import decoded_batches, predict_in_batches

    class_names = predictor.class_names
    table = table.with_classes(class_names)
    if not len(table):
        raise SkinkerasError(f"no usable images under {table.root}")
    vocabulary = set(predictor.spec.metadata.sites) if predictor.spec.metadata is not None else set()
    samples = table.samples
    ids, probs, labels, groups, skipped = [], [], [], [], []
    bar = tqdm(total=len(samples), unit="image", file=sys.stderr, disable=None if progress else True, desc="evaluate")
    paths = samples["image_path"].tolist()
    for start, decoded in decoded_batches(paths, _read_pipeline_image, batch_size):
        rows = samples.iloc[start:start + len(decoded)]
        keep = [k for k, (pixels, _) in enumerate(decoded) if pixels is not None]
        skipped += [{"image_id": str(rows["image_id"].iloc[k]), "reason": why}
                    for k, (pixels, why) in enumerate(decoded) if pixels is None]
        metadata = [(float(rows["age"].iloc[k]), str(rows["sex"].iloc[k]),
                     str(rows["site"].iloc[k]) if rows["site"].iloc[k] in vocabulary else UNKNOWN) for k in keep]
        results = predict_in_batches(predictor, [decoded[k][0] for k in keep], metadata, batch_size)
        for k, (p, why) in zip(keep, results):
            if p is None:
                skipped.append({"image_id": str(rows["image_id"].iloc[k]), "reason": why})
                continue
            ids.append(str(rows["image_id"].iloc[k]))
            probs.append(p)
            labels.append(int(rows["label_index"].iloc[k]))
            groups.append(str(rows["lesion_id"].iloc[k]))
        bar.update(len(rows))
    bar.close()
    for item in skipped:
        log.warning("left out %s: %s", item["image_id"], item["reason"])
    if not ids:
        raise SkinkerasError(f"none of the {len(samples)} images under {table.root} could be predicted")
    predictions = Predictions.from_probabilities(ids=ids, probabilities=np.stack(probs), class_names=class_names,
                                                 y_true=labels, groups=groups, model=model)
    return predictions, {"skipped_images": skipped, "metadata": metadata_report(table, predictor.spec)}


def notes(info: dict, data_root) -> list[str]:
    """The report's lines on what was evaluated and what the export could not take as given."""
    lines = [f"Export: {info['export']['path']} ({info['export']['kind']}), evaluated on every image under "
             f"{data_root} (no run directory used)."]
    meta = info["metadata"]
    if meta.get("used"):
        outside = meta["sites_mapped_to_unknown"]
        if outside:
            lines.append("Sites unknown to the export, encoded as 'unknown': "
                         + ", ".join(f"{site!r} ({n})" for site, n in outside.items()) + ".")
        unknown = meta["unknown"]
        lines.append(f"Metadata given to the export as unknown, of {meta['images']} images: age {unknown['age']}, "
                     f"sex {unknown['sex']}, site {unknown['site']}.")
    if info["skipped_images"]:
        shown = ", ".join(item["image_id"] for item in info["skipped_images"][:20])
        lines.append(f"{len(info['skipped_images'])} images left out (unreadable): {shown}"
                     + (" ..." if len(info["skipped_images"]) > 20 else "") + ".")
    return lines


def guess_dataset(data_root) -> str:
    """The layout of `data_root` from its marker files; an error asking for --dataset otherwise."""
    from skinkeras.data.registry import list_datasets

    root = Path(data_root)
    markers = (("ham10000", "HAM10000_metadata.csv"), ("isic2017", "ISIC-2017_*_Part3_GroundTruth.csv"),
               ("derm7pt", "meta/meta.csv"), ("eis", "eis_metadata.csv"), ("folder", "labels.csv"))
    for name, pattern in markers:
        if next(root.glob(pattern), None) is not None:
            return name
    raise SkinkerasError(f"cannot tell the dataset layout of {root}: pass --dataset "
                         f"({', '.join(list_datasets())})")
