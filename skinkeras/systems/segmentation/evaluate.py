"""Evaluating a segmentation run: per-image scores as its predictions file, then their means.

Each image is predicted at the run's input size and the probability map resized back to the mask's
own resolution (bilinear) before thresholding, so scores are against the masks as distributed, not
against downsized copies. Per image: Dice, Jaccard and ISIC thresholded Jaccard (see
skinkeras.segmentation.losses for the empty-mask conventions): the predictions file's `score_*`
columns, also written as per_image.csv; their means with BCa 95 % bootstrap intervals go to
metrics.json and report.md; contours.png shows the best, median and worst images with the true
(green) and predicted (red) lesion contours.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from skinkeras.engine.run_directory import as_run
from skinkeras.errors import SkinkerasError
from skinkeras.files import write_json

log = logging.getLogger(__name__)

SCORES = ("jaccard", "thresholded_jaccard", "dice")
PER_IMAGE_FILE = "per_image.csv"
CONTOURS_FILE = "contours.png"


def predict_table_masks(model, image_size: int, table, *, threshold: float = 0.5, batch_size: int = 16):
    """Yields `(row index, image uint8, true mask bool, predicted mask bool)` for every row of
    `table` that has a mask, predicting in batches."""
    from skinkeras.data.images import read_image_rgb
    from skinkeras.segmentation.crop import predict_masks, read_mask

    samples = table.samples.reset_index(drop=True)
    for start in range(0, len(samples), batch_size):
        rows = range(start, min(start + batch_size, len(samples)))
        images = [read_image_rgb(samples.at[i, "image_path"]) for i in rows]
        truths = [read_mask(samples.at[i, "mask_path"]) for i in rows]
        for i, image, truth, probabilities in zip(rows, images, truths,
                                                  predict_masks(model, images, image_size, batch_size)):
            if probabilities.shape != truth.shape:
                import cv2

                probabilities = cv2.resize(probabilities, (truth.shape[1], truth.shape[0]))
            yield i, image, truth, probabilities > threshold


def _masked_table(run, data_root, dataset, split):
    from skinkeras.engine.run_data import evaluation_table

    table = evaluation_table(run, data_root, dataset, split)
    has_mask = table.samples["mask_path"].fillna("").astype(str) != ""
    if not has_mask.any():
        raise SkinkerasError(f"none of the {len(table)} {split} images under {data_root} has a lesion mask")
    if not has_mask.all():
        log.warning("%d of %d images have no mask and are not scored", int((~has_mask).sum()), len(table))
    return table.subset(has_mask)


def predict(run_dir, data_root=None, *, dataset=None, split: str = "test", batch_size: int = 16,
            fold: int | None = None, **_):
    """Per-image scores of the run's best model on `split` ("test", "val", "train" or "all")."""
    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.segmentation.losses import (
        dice_per_image,
        jaccard_per_image,
        thresholded_jaccard,
    )
    from skinkeras.systems.segmentation.model import load_segmenter

    run = as_run(run_dir)
    config = run.read_config()
    data_root = data_root or config.data.root
    if not data_root:
        raise SkinkerasError("no dataset root given (--data-root DIR)")
    model, image_size = load_segmenter(run)
    table = _masked_table(run, data_root, dataset, split)
    ids, groups, scores = [], [], {name: [] for name in (*SCORES, "true_pixels", "predicted_pixels")}
    for i, image, truth, predicted in predict_table_masks(model, image_size, table,
                                                          threshold=config.segmentation.threshold,
                                                          batch_size=batch_size):
        jaccard = float(jaccard_per_image(truth, predicted)[0])
        ids.append(table.samples.at[i, "image_id"])
        groups.append(table.samples.at[i, "lesion_id"])
        scores["jaccard"].append(jaccard)
        scores["thresholded_jaccard"].append(float(thresholded_jaccard(jaccard)))
        scores["dice"].append(float(dice_per_image(truth, predicted)[0]))
        scores["true_pixels"].append(int(truth.sum()))
        scores["predicted_pixels"].append(int(predicted.sum()))
    return Predictions.from_scores(ids=ids, scores=scores, groups=groups, model=config.segmentation.architecture,
                                   fold=fold)


def score(predictions, out_dir, *, run_dir=None, data_root=None, dataset=None, split: str = "test",
          n_resamples: int = 10_000, title: str = "", extra: dict | None = None, **_) -> tuple[dict, dict]:
    """Means with BCa intervals of the per-image scores; writes per_image.csv, metrics.json,
    report.md and (given the run and its data) contours.png. Returns (metrics, files)."""
    import pandas as pd

    from skinkeras.evaluation.bootstrap import bootstrap_ci

    run = as_run(run_dir) if run_dir is not None else None
    preprocessing = run.read_preprocessing() if run is not None else {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_image = pd.DataFrame({"image_id": predictions.ids,
                              **{name: predictions.scores(name) for name in predictions.score_names}})
    for column in ("true_pixels", "predicted_pixels"):
        if column in per_image:
            per_image[column] = per_image[column].astype(int)
    files = {"per_image": out_dir / PER_IMAGE_FILE}
    per_image.to_csv(files["per_image"], index=False)

    metrics = {"task": "segmentation", "split": split, "images": len(per_image),
               "threshold": preprocessing.get("threshold"), "image_size": preprocessing.get("image_size"),
               "n_resamples": n_resamples}
    for name in SCORES:
        values = per_image[name].to_numpy(dtype=np.float64)
        ci = bootstrap_ci(lambda a: a.mean(axis=-1), values, n_resamples=n_resamples, seed=0)
        metrics[name] = {"mean": float(values.mean()), "ci95": ci.as_list(), "median": float(np.median(values))}
    metrics.update(extra or {})
    metrics["summary"] = (
        f"{split}: {len(per_image)} images, mean Jaccard {_fmt(metrics['jaccard'])}, "
        f"thresholded Jaccard {_fmt(metrics['thresholded_jaccard'])}, Dice {_fmt(metrics['dice'])}"
    )
    files["metrics"] = write_json(out_dir / "metrics.json", metrics)
    if run is not None and (data_root or run.read_config().data.root):
        from skinkeras.systems.segmentation.model import load_segmenter

        model, image_size = load_segmenter(run)
        table = _masked_table(run, data_root or run.read_config().data.root, dataset, split)
        table = table.subset(table.samples["image_id"].isin(set(per_image["image_id"])))
        # Cross-validation scores every fold's images; the contours show those of this run's split.
        shown = per_image[per_image["image_id"].isin(set(table.samples["image_id"]))]
        if len(shown):
            files["contours"] = plot_contours(model, image_size, table, shown, out_dir / CONTOURS_FILE,
                                              threshold=metrics["threshold"])
    from skinkeras.files import atomic_write_text

    files["report"] = atomic_write_text(out_dir / "report.md", _report(title or (run.name if run else ""), metrics))
    return metrics, {name: str(path) for name, path in files.items()}


def _fmt(score: dict) -> str:
    from skinkeras.evaluation.formatting import interval, number

    ci = interval(score["ci95"])
    return number(score["mean"]) + (f" {ci}" if ci != "n/a" else "")


def _report(name: str, metrics: dict) -> str:
    from skinkeras.evaluation.formatting import interval, number

    lines = [
        f"# {name}: segmentation, {metrics['split']} split ({metrics['images']} images)",
        "",
        f"Input {metrics['image_size']} px, threshold {metrics['threshold']}; scores per image at the mask's "
        "resolution, then averaged; 95 % BCa bootstrap intervals "
        f"({metrics['n_resamples']} resamples).",
        "",
        "| score | mean | 95 % CI | median |",
        "|---|---|---|---|",
    ]
    for name in SCORES:
        s = metrics[name]
        ci = interval(s["ci95"], style="dash").replace(" - ", " to ")
        lines.append(f"| {name} | {number(s['mean'])} | {ci} | {number(s['median'])} |")
    lines += ["", "Thresholded Jaccard: per-image Jaccard below 0.65 counts as 0 (ISIC 2018 task 1).",
              "Contours (green: true, red: predicted) of the best, median and worst images: contours.png", ""]
    return "\n".join(lines)


def plot_contours(model, image_size: int, table, per_image, path, *, threshold: float = 0.5, per_rank: int = 2):
    """A grid of images with true (green) and predicted (red) contours: best, median and worst by
    Jaccard, `per_rank` of each. `per_image` rows are `table`'s rows (by image_id)."""
    from skinkeras.evaluation.plots import _pyplot, _save

    per_image = per_image.reset_index(drop=True)
    order = per_image.sort_values("jaccard", ascending=False).index.to_numpy()
    middle = len(order) // 2
    picks = {
        "best": order[:per_rank],
        "median": order[max(0, middle - per_rank // 2): max(0, middle - per_rank // 2) + per_rank],
        "worst": order[::-1][:per_rank],
    }
    chosen = [(rank, int(i)) for rank, indices in picks.items() for i in indices]
    position = {image_id: k for k, image_id in enumerate(table.samples["image_id"])}
    subset = table.subset(table.samples.index[[position[per_image.at[i, "image_id"]] for _, i in chosen]])
    predicted = list(predict_table_masks(model, image_size, subset, threshold=threshold))
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(chosen), figsize=(3 * len(chosen), 3.2), squeeze=False)
    for ax, (rank, index), (_, image, truth, prediction) in zip(axes[0], chosen, predicted):
        ax.imshow(image)
        for mask, colour in ((truth, "lime"), (prediction, "red")):
            if mask.any() and not mask.all():
                ax.contour(mask.astype(float), levels=[0.5], colors=colour, linewidths=1.2)
        ax.set_title(f"{rank}: {per_image.at[index, 'image_id']}\nJ = {per_image.at[index, 'jaccard']:.2f}",
                     fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)
