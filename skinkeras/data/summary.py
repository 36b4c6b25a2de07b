"""`skinkeras data summary`: what a dataset folder holds and everything wrong with it.

`summarize(table)` returns a JSON-ready dict: dataset, root, counts of images, lesions and classes,
image size statistics, masks, metadata completeness and every problem grouped by kind with the image
ids. With `check_images=True` every image is decoded (thread pool, OpenCV), which finds truncated or
corrupt files (UNREADABLE) and files that are not 8-bit RGB (CONVERTED); without it, sizes come from
file headers only and nothing is decoded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinkeras.data.images import check_images_with_sizes, header_sizes
from skinkeras.data.synth.common import NOTICE_FILE
from skinkeras.data.table import EXCLUDING_KINDS, Problem, SampleTable


def _size_stats(sizes) -> dict:
    known = np.array([s for s in sizes if s is not None], dtype=float).reshape(-1, 2)
    if not len(known):
        return {"n_measured": 0}
    stats = {"n_measured": int(len(known))}
    for axis, name in enumerate(("width", "height")):
        values = known[:, axis]
        stats[name] = {"min": int(values.min()), "median": float(np.median(values)), "max": int(values.max())}
    distinct = {tuple(int(v) for v in s) for s in known}
    stats["distinct_sizes"] = len(distinct)
    return stats


def _semi_synthetic(notice: Path) -> bool:
    """Real images with generated measurements (skinkeras.data.synth.eis_paired): say so, not "not medical"."""
    try:
        return notice.read_text(encoding="utf-8", errors="replace").startswith("SEMI-SYNTHETIC")
    except OSError:
        return False


def group_problems(problems: list[Problem]) -> dict[str, list[dict]]:
    """{kind: [{"image_id", "detail"}, ...]} in first-seen order of kinds."""
    grouped: dict[str, list[dict]] = {}
    for problem in problems:
        grouped.setdefault(problem.kind, []).append({"image_id": problem.image_id, "detail": problem.detail})
    return grouped


def summarize(table: SampleTable, check_images: bool = True, workers: int | None = None) -> dict:
    """Everything `data summary` reports about a loaded table (see the module docstring).

    `n_images` counts the rows the loader kept; `n_usable` also leaves out images found unreadable
    by `check_images` (when it ran). Problems are the loader's plus the image checks'.
    """
    samples = table.samples
    paths = samples["image_path"].tolist()
    # EIS lesions may have no image ("" path): nothing to measure or check there.
    with_image = [i for i, p in enumerate(paths) if p]
    image_paths = [paths[i] for i in with_image]
    image_ids = [samples["image_id"].iloc[i] for i in with_image]
    problems = list(table.problems)
    if check_images:
        found, sizes = check_images_with_sizes(image_paths, image_ids, workers=workers)
        problems += found
        unreadable = {p.image_id for p in found if p.excludes}
    else:
        sizes = header_sizes(image_paths, workers=workers)
        unreadable = set()

    ages = samples["age"].to_numpy(dtype=float)
    n = len(samples)

    def share(count: int) -> float:
        return round(count / n, 4) if n else 0.0

    metadata = {
        "age_known": share(int(np.isfinite(ages).sum())),
        "sex_known": share(int((samples["sex"] != "unknown").sum())),
        "site_known": share(int((samples["site"] != "unknown").sum())),
    }
    if np.isfinite(ages).any():
        metadata["age_range"] = [float(np.nanmin(ages)), float(np.nanmax(ages))]
    grouped = group_problems(problems)
    summary = {
        "dataset": table.name,
        "root": str(table.root),
        "generated": (Path(table.root) / NOTICE_FILE).exists(),
        "semi_synthetic": _semi_synthetic(Path(table.root) / NOTICE_FILE),
        "n_images": int(n),
        "n_usable": int(n - len(unreadable)),
        "n_lesions": int(samples["lesion_id"].nunique()),
        "classes": list(table.class_names),
        "class_counts": table.class_counts(),
        "n_with_mask": int((samples["mask_path"] != "").sum()),
        "image_size": _size_stats(sizes),
        "images_checked": bool(check_images),
        "metadata": metadata,
        "n_excluded": len({p.image_id for p in problems if p.kind in EXCLUDING_KINDS}),
        "problem_counts": {kind: len(items) for kind, items in grouped.items()},
        "problems": grouped,
    }
    splits = samples["split"][samples["split"] != ""]
    if len(splits):
        summary["split_counts"] = {str(k): int(v) for k, v in splits.value_counts().sort_index().items()}
    for extra in ("clinical_path",):
        if extra in samples.columns:
            summary[f"n_with_{extra.removesuffix('_path')}"] = int((samples[extra] != "").sum())
    if "n_measurements" in samples.columns:
        summary["n_measurements"] = int(samples["n_measurements"].sum())
        summary["n_with_image"] = int(len(with_image))
    return summary


def format_summary(summary: dict, max_ids: int = 20) -> str:
    """The human-readable table printed by `skinkeras data summary`."""
    lines = [f"dataset   {summary['dataset']}  ({summary['root']})"]
    if summary.get("semi_synthetic"):
        lines.append("          SEMI-SYNTHETIC DATA (README_SYNTHETIC.txt): real images, GENERATED measurements")
    elif summary.get("generated"):
        lines.append("          GENERATED DATA (README_SYNTHETIC.txt): not medical data")
    lines.append(f"images    {summary['n_images']:,} ({summary['n_usable']:,} usable)   lesions {summary['n_lesions']:,}"
                 f"   with mask {summary['n_with_mask']:,}")
    total = max(summary["n_images"], 1)
    lines.append("classes")
    width = max(len(c) for c in summary["classes"]) if summary["classes"] else 5
    for name, count in summary["class_counts"].items():
        lines.append(f"  {name:<{width}}  {count:>7,}  {100 * count / total:5.1f} %")
    if "split_counts" in summary:
        lines.append("splits    " + ", ".join(f"{k} {v:,}" for k, v in summary["split_counts"].items()))
    for key in ("n_with_clinical", "n_measurements", "n_with_image"):
        if key in summary:
            lines.append(f"{key.replace('n_', '').replace('_', ' ')}: {summary[key]:,}")
    size = summary["image_size"]
    if size.get("n_measured"):
        how = "decoded" if summary["images_checked"] else "from headers"
        lines.append(
            f"size      width {size['width']['min']}/{size['width']['median']:g}/{size['width']['max']}, height "
            f"{size['height']['min']}/{size['height']['median']:g}/{size['height']['max']} (min/median/max, {how}; "
            f"{size['distinct_sizes']} distinct)"
        )
    meta = summary["metadata"]
    ages = f", age {meta['age_range'][0]:g}..{meta['age_range'][1]:g}" if "age_range" in meta else ""
    lines.append(
        f"metadata  age known {100 * meta['age_known']:.1f} %, sex known {100 * meta['sex_known']:.1f} %, "
        f"site known {100 * meta['site_known']:.1f} %{ages}"
    )
    if not summary["problems"]:
        lines.append("problems  none" + ("" if summary["images_checked"] else " (images not decoded: --no-check-images)"))
    else:
        lines.append(f"problems  {sum(summary['problem_counts'].values()):,} ({summary['n_excluded']:,} images excluded)")
        for kind, items in summary["problems"].items():
            kept = "" if kind in EXCLUDING_KINDS else ", kept"  # e.g. missing_clinical: the case stays
            lines.append(f"  {kind} ({len(items)}{kept})")
            for item in items[:max_ids]:
                lines.append(f"    {item['image_id']}: {item['detail']}")
            if len(items) > max_ids:
                lines.append(f"    ... {len(items) - max_ids} more (use --json for all)")
    return "\n".join(lines)

