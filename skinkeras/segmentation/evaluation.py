"""Evaluating a segmentation run (`skinkeras evaluate RUN` for task "segmentation").

Each image is predicted at the run's input size and the probability map resized back to the mask's
own resolution (bilinear) before thresholding, so scores are against the masks as distributed, not
against downsized copies. Per image: Dice, Jaccard and ISIC thresholded Jaccard (see
skinkeras.segmentation.losses for the empty-mask conventions), written to per_image.csv; their means
with BCa 95 % bootstrap intervals go to metrics.json and report.md; contours.png shows the best,
median and worst images with the true (green) and predicted (red) lesion contours.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)

SCORES = ("jaccard", "thresholded_jaccard", "dice")


def predict_table_masks(model, image_size: int, table, *, threshold: float = 0.5, batch_size: int = 16):
    """Yields `(row index, image uint8, true mask bool, predicted mask bool)` for every row of
    `table` that has a mask, predicting in batches."""
    from skinkeras.data.images import read_image_rgb
    from skinkeras.segmentation.crop import _read_mask, predict_masks

    samples = table.samples.reset_index(drop=True)
    for start in range(0, len(samples), batch_size):
        rows = range(start, min(start + batch_size, len(samples)))
        images = [read_image_rgb(samples.at[i, "image_path"]) for i in rows]
        truths = [_read_mask(samples.at[i, "mask_path"]) for i in rows]
        for i, image, truth, probabilities in zip(rows, images, truths,
                                                  predict_masks(model, images, image_size, batch_size)):
            if probabilities.shape != truth.shape:
                import cv2

                probabilities = cv2.resize(probabilities, (truth.shape[1], truth.shape[0]))
            yield i, image, truth, probabilities > threshold


def evaluate_segmentation_run(run_dir, data_root, *, dataset=None, split: str = "test", out_dir=None,
                              multi_crop: bool = False, n_resamples: int = 10_000,
                              target_sensitivity: float = 0.98, batch_size: int = 16):
    """Scores the run's best model on `split` ("test", "val", "train" or "all") of its dataset.

    `multi_crop` and `target_sensitivity` are classification options and are ignored here.
    Returns `(metrics, files)`; `metrics["summary"]` is the one line the CLI prints.
    """
    import pandas as pd

    from skinkeras.evaluation.bootstrap import bootstrap_ci
    from skinkeras.evaluation.run_evaluation import evaluation_table
    from skinkeras.experiments.config import load_config
    from skinkeras.segmentation.losses import dice_per_image, jaccard_per_image, thresholded_jaccard
    from skinkeras.segmentation.training import load_segmenter

    del multi_crop, target_sensitivity
    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.json")
    data_root = data_root or config.data.root
    if not data_root:
        raise SkinkerasError("no dataset root given (--data-root DIR)")
    model, image_size = load_segmenter(run_dir)
    table = evaluation_table(run_dir, data_root, dataset, split)
    has_mask = table.samples["mask_path"].fillna("").astype(str) != ""
    if not has_mask.any():
        raise SkinkerasError(f"none of the {len(table)} {split} images under {data_root} has a lesion mask")
    if not has_mask.all():
        log.warning("%d of %d images have no mask and are not scored", int((~has_mask).sum()), len(table))
    table = table.subset(has_mask)
    threshold = config.segmentation.threshold

    rows = []
    for i, image, truth, predicted in predict_table_masks(model, image_size, table, threshold=threshold,
                                                          batch_size=batch_size):
        jaccard = float(jaccard_per_image(truth, predicted)[0])
        rows.append({
            "image_id": table.samples.at[i, "image_id"],
            "jaccard": jaccard,
            "thresholded_jaccard": float(thresholded_jaccard(jaccard)),
            "dice": float(dice_per_image(truth, predicted)[0]),
            "true_pixels": int(truth.sum()),
            "predicted_pixels": int(predicted.sum()),
        })
    per_image = pd.DataFrame(rows)
    out_dir = Path(out_dir) if out_dir else run_dir / f"evaluation_{split}"
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"per_image": out_dir / "per_image.csv"}
    per_image.to_csv(files["per_image"], index=False)

    metrics = {"task": "segmentation", "split": split, "images": len(per_image), "threshold": threshold,
               "image_size": image_size, "n_resamples": n_resamples}
    for score in SCORES:
        values = per_image[score].to_numpy(dtype=np.float64)
        ci = bootstrap_ci(lambda a: a.mean(axis=-1), values, n_resamples=n_resamples, seed=0)
        metrics[score] = {"mean": float(values.mean()), "ci95": ci.as_list(), "median": float(np.median(values))}
    metrics["summary"] = (
        f"{split}: {len(per_image)} images, mean Jaccard {_fmt(metrics['jaccard'])}, "
        f"thresholded Jaccard {_fmt(metrics['thresholded_jaccard'])}, Dice {_fmt(metrics['dice'])}"
    )
    files["metrics"] = out_dir / "metrics.json"
    files["metrics"].write_text(json.dumps(metrics, indent=2) + "\n")
    files["contours"] = plot_contours(model, image_size, table, per_image, out_dir / "contours.png",
                                      threshold=threshold)
    files["report"] = out_dir / "report.md"
    files["report"].write_text(_report(run_dir, metrics))
    return metrics, {name: str(path) for name, path in files.items()}


def _fmt(score: dict) -> str:
    low, high = score["ci95"]
    interval = f" [{low:.3f}, {high:.3f}]" if low is not None else ""
    return f"{score['mean']:.3f}{interval}"


def _report(run_dir: Path, metrics: dict) -> str:
    lines = [
        f"# {run_dir.name}: segmentation, {metrics['split']} split ({metrics['images']} images)",
        "",
        f"Input {metrics['image_size']} px, threshold {metrics['threshold']}; scores per image at the mask's "
        "resolution, then averaged; 95 % BCa bootstrap intervals "
        f"({metrics['n_resamples']} resamples).",
        "",
        "| score | mean | 95 % CI | median |",
        "|---|---|---|---|",
    ]
    for score in SCORES:
        s = metrics[score]
        low, high = s["ci95"]
        interval = f"{low:.3f} to {high:.3f}" if low is not None else "n/a"
        lines.append(f"| {score} | {s['mean']:.3f} | {interval} | {s['median']:.3f} |")
    lines += ["", "Thresholded Jaccard: per-image Jaccard below 0.65 counts as 0 (ISIC 2018 task 1).",
              "Contours (green: true, red: predicted) of the best, median and worst images: contours.png", ""]
    return "\n".join(lines)


def plot_contours(model, image_size: int, table, per_image, path, *, threshold: float = 0.5, per_rank: int = 2):
    """A grid of images with true (green) and predicted (red) contours: best, median and worst by
    Jaccard, `per_rank` of each."""
    from skinkeras.evaluation.plots import _pyplot, _save

    order = per_image.sort_values("jaccard", ascending=False).index.to_numpy()
    middle = len(order) // 2
    picks = {
        "best": order[:per_rank],
        "median": order[max(0, middle - per_rank // 2): max(0, middle - per_rank // 2) + per_rank],
        "worst": order[::-1][:per_rank],
    }
    chosen = [(rank, int(i)) for rank, indices in picks.items() for i in indices]
    subset = table.subset(table.samples.index[[i for _, i in chosen]])
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
