"""Evaluation plots as PNG files: confusion matrix, per-class ROC curves, per-class F1/recall bars.

matplotlib is imported inside each function with the non-interactive Agg backend, so importing this
module is cheap and nothing needs a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from skinkeras.evaluation.metrics import roc_curve


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix, class_names: Sequence[str], path) -> Path:
    """Counts (left) and row-normalised shares (right: each true class sums to 1)."""
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=np.float64)
    row_sums = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)
    size = max(4.0, 0.6 * len(class_names) + 2.0)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for ax, values, title, fmt in (
        (axes[0], matrix, "Counts", "{:.0f}"),
        (axes[1], normalised, "Row-normalised (recall on the diagonal)", "{:.2f}"),
    ):
        image = ax.imshow(values, cmap="Blues", vmin=0)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(title)
        ax.set_xlabel("Predicted")
        ax.set_ylabel("True")
        ticks = np.arange(len(class_names))
        ax.set_xticks(ticks, class_names, rotation=45, ha="right")
        ax.set_yticks(ticks, class_names)
        threshold = values.max() / 2 if values.size and values.max() > 0 else 0.5
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if values[i, j] > threshold else "black")
    fig.tight_layout()
    return _save(fig, path)


def plot_roc_curves(y_true, y_prob, class_names: Sequence[str], path, per_class=None) -> Path:
    """One-vs-rest ROC curve for every class present in y_true, with its AUC in the legend."""
    plt = _pyplot()
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6.5, 6))
    for c, name in enumerate(class_names):
        positive = y_true == c
        if not positive.any() or positive.all():
            continue  # no ROC curve without positives and negatives
        fpr, tpr, _ = roc_curve(positive, y_prob[:, c])
        auc = (per_class or {}).get(name, {}).get("auc")
        label = f"{name} (AUC {auc:.3f})" if auc is not None else name
        ax.plot(fpr, tpr, linewidth=1.5, label=label)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.set_title("ROC curves, one vs rest")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_per_class_bars(per_class: dict, class_names: Sequence[str], path) -> Path:
    """Grouped bars of F1 and recall per class (missing values drawn as 0 and marked n/a)."""
    plt = _pyplot()
    x = np.arange(len(class_names))
    width = 0.38
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(class_names) + 2), 4.5))
    for offset, key in ((-width / 2, "f1"), (width / 2, "recall")):
        values = [per_class[name].get(key) for name in class_names]
        bars = ax.bar(x + offset, [v or 0.0 for v in values], width, label=key)
        for bar, value in zip(bars, values):
            text = "n/a" if value is None else f"{value:.2f}"
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01, text,
                    ha="center", va="bottom", fontsize=7)
    labels = [f"{name}\n(n={per_class[name]['support']})" for name in class_names]
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("score")
    ax.set_title("Per-class F1 and recall")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
