"""Radar (spider) plot comparing a few rows of the two-stage table on several metrics (paper 002, Fig. 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def plot_radar(rows: Sequence[dict], axes: Sequence[tuple[str, str]], path, *, title: str = "") -> Path:
    """One closed polygon per row over `axes` ((row key, axis label) pairs); values in [0, 1].

    Missing values (None) are drawn at 0 and the axis label says nothing about them, so choose
    metrics every row has. The radial axis is fixed to 0..1 so plots of different runs compare.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows or len(axes) < 3:
        raise ValueError(f"a radar plot needs rows and at least 3 axes. Received {len(rows)} rows, {len(axes)} axes")
    angles = np.linspace(0.0, 2 * np.pi, len(axes), endpoint=False)
    closed = np.concatenate([angles, angles[:1]])
    fig, ax = plt.subplots(figsize=(8, 7.5), subplot_kw={"polar": True})
    colours = plt.get_cmap("tab10")
    for index, row in enumerate(rows):
        values = np.array([row.get(key) if row.get(key) is not None else 0.0 for key, _ in axes], float)
        values = np.concatenate([values, values[:1]])
        # Solid lines for one variant, dashed for the other, so pairs read at a glance.
        style = "--" if row.get("variant") == "whole" else "-"
        ax.plot(closed, values, style, color=colours(index % 10), linewidth=1.6, label=row["label"])
        ax.fill(closed, values, color=colours(index % 10), alpha=0.05)
    ax.set_xticks(angles)
    ax.set_xticklabels([label for _, label in axes], fontsize=8)
    ax.set_ylim(0.0, 1.0)
    ax.set_yticks([0.2, 0.4, 0.6, 0.8, 1.0])
    ax.tick_params(axis="y", labelsize=7)
    if title:
        ax.set_title(title, fontsize=10, pad=18)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
