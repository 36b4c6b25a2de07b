"""A run's data: the dataset table with its lesion-grouped split, shared by every task's trainer.

The split is the run's `split.csv` when it has one (a resumed run, a cross-validation fold, a
composite run's member), else a new lesion-grouped, class-stratified split by `split.fractions`
and `split.seed`, written to `split.csv`. Dataset problems (missing files, unknown labels, ...) and
images the pipeline's decoder cannot read are logged and recorded in `skipped.json` by image id.
"""

from __future__ import annotations

import dataclasses
import json
import logging

from skinkeras.engine.run_directory import RunDirectory, as_run
from skinkeras.errors import SkinkerasError
from skinkeras.files import write_json

log = logging.getLogger(__name__)

SPLIT_COLUMNS = ["image_id", "lesion_id", "label", "split"]
PARTS = ("train", "val", "test")
EVALUATION_SPLITS = ("test", "val", "train", "all")


@dataclasses.dataclass
class RunData:
    """The dataset of a run, split, with what the model needs to know about it."""

    table: object  # SampleTable with its `split` column filled
    class_names: tuple[str, ...]
    metadata: object | None = None  # MetadataEncoding or None

    def part(self, name: str):
        return self.table.subset(self.table.samples["split"] == name)

    def sizes(self) -> dict[str, int]:
        return split_sizes(self.table)


def split_sizes(table) -> dict[str, int]:
    return {name: int((table.samples["split"] == name).sum()) for name in PARTS}


def read_split(run: RunDirectory) -> dict[str, str] | None:
    """The run's stored split as image_id -> "train" / "val" / "test", or None without split.csv."""
    import pandas as pd

    if not run.split.exists():
        return None
    stored = pd.read_csv(run.split, dtype=str, keep_default_na=False)
    return dict(zip(stored["image_id"], stored["split"]))


def write_split(run: RunDirectory, table) -> None:
    run.path.mkdir(parents=True, exist_ok=True)
    table.samples[SPLIT_COLUMNS].to_csv(run.split, index=False)


def load_table(config, run: RunDirectory | None = None):
    """The experiment's dataset (`data.dataset` at `data.root`); its problems are logged and, with
    a run, written to skipped.json."""
    from skinkeras.data.registry import load_dataset

    if not config.data.root:
        raise SkinkerasError("no dataset root given (--data-root DIR or --set data.root=DIR)")
    table = load_dataset(config.data.dataset, config.data.root, **loader_options(config))
    if table.problems:
        excluded = [p for p in table.problems if p.excludes]
        if run is not None:
            write_json(run.skipped, [dataclasses.asdict(p) for p in table.problems])
        log.warning("%d problems in the dataset (%d images left out)%s", len(table.problems), len(excluded),
                    f"; see {run.skipped}" if run is not None else "")
        log_problems(table.problems)
    if len(table) == 0:
        kinds = sorted({p.kind for p in table.problems if p.excludes})
        raise SkinkerasError(f"no usable images in the {config.data.dataset} dataset at {config.data.root}"
                             + (f" (every row left out: {', '.join(kinds)})" if kinds else ""))
    return table


def log_problems(problems) -> None:
    """One warning per kind of problem, naming every image (or the whole table) it concerns."""
    from skinkeras.data.table import ALL_IMAGES

    kinds: dict[str, list] = {}
    for problem in problems:
        kinds.setdefault(problem.kind, []).append(problem)
    for kind, items in kinds.items():
        log.warning("%s (%d): %s", kind, len(items), "; ".join(
            p.detail if p.image_id == ALL_IMAGES else f"{p.image_id}: {p.detail}" for p in items))


def loader_options(config) -> dict:
    """The dataset loader's options that the config sets (only what differs from the defaults)."""
    if not getattr(config.data, "allow_outside_root", False):
        return {}
    if config.data.dataset != "folder":
        raise SkinkerasError(f"data.allow_outside_root applies to the folder layout only. "
                             f"Received: data.dataset={config.data.dataset!r}")
    return {"allow_outside_root": True}


def with_stored_split(table, by_id: dict[str, str]):
    samples = table.samples.copy()
    samples["split"] = samples["image_id"].map(by_id).fillna("")
    return dataclasses.replace(table, samples=samples)


def load_split_table(config, run: RunDirectory, *, table=None):
    """The run's dataset (or `table`) with a `split` column: the run's split.csv when it has one,
    else a new lesion-grouped split (written to split.csv)."""
    from skinkeras.data.splits import train_val_test_split, with_split_column

    table = table if table is not None else load_table(config, run)
    by_id = read_split(run)
    if by_id is not None:
        return with_stored_split(table, by_id)
    split = train_val_test_split(table, config.split.fractions, seed=config.split.seed)
    table = with_split_column(table, split)
    write_split(run, table)
    return table


def limit_training(table, limit: int, seed: int, *, stratified: bool = True):
    """Smoke runs: at most about `limit` training images (class-stratified, or a plain random
    sample); val / test stay whole."""
    if not limit:
        return table
    samples = table.samples
    train = samples[samples["split"] == "train"]
    if stratified:
        keep = train.groupby("label", group_keys=False).apply(
            lambda g: g.sample(n=max(1, round(len(g) * limit / len(train))), random_state=seed),
            include_groups=False).index
        samples = samples.drop(index=train.index.difference(keep)).reset_index(drop=True)
        return dataclasses.replace(table, samples=samples)
    drop = train.index.difference(train.sample(n=min(len(train), limit), random_state=seed).index)
    return table.subset(~samples.index.isin(drop))


def check_images_once(table, run: RunDirectory):
    """Decodes every image once; unreadable ones are left out, logged and added to skipped.json."""
    from skinkeras.data.images import check_images

    samples = table.samples
    problems = check_images(samples["image_path"].tolist(), samples["image_id"].tolist())
    bad = {p.image_id for p in problems if p.excludes}
    if not bad:
        return table
    # Every id, with why: a user must be able to find each image training went without.
    log.warning("skipping %d unreadable images: %s", len(bad),
                "; ".join(f"{p.image_id} ({p.detail})" for p in problems if p.excludes))
    previous = json.loads(run.skipped.read_text()) if run.skipped.exists() else []
    write_json(run.skipped, previous + [dataclasses.asdict(p) for p in problems])
    return table.subset(~samples["image_id"].isin(bad))


def require_parts(table, parts=("train", "val"), what: str = "images") -> dict[str, int]:
    """The split sizes; an error naming an empty one of `parts`."""
    sizes = split_sizes(table)
    for name in parts:
        if not sizes[name]:
            raise SkinkerasError(f"the {name} split is empty: {len(table)} {what} in all")
    return sizes


def evaluation_table(run_dir, data_root, dataset: str | None, split: str):
    """The samples to evaluate: the run's own split of its dataset, or all images of a root."""
    from skinkeras.data.registry import load_dataset

    if split not in EVALUATION_SPLITS:
        raise SkinkerasError(f"--split must be one of {', '.join(EVALUATION_SPLITS)}. Received: {split!r}")
    run = as_run(run_dir)
    config = run.read_config()
    dataset = dataset or config.data.dataset
    options = loader_options(config) if dataset == config.data.dataset else {}
    table = load_dataset(dataset, data_root, **options)
    for problem in table.problems:
        if problem.excludes:
            log.warning("left out %s: %s %s", problem.image_id, problem.kind, problem.detail)
    if split == "all":
        return table
    by_id = read_split(run)
    if by_id is None:
        raise SkinkerasError(f"{run.path} has no split.csv; use --split all for an external set")
    wanted = {image_id for image_id, part in by_id.items() if part == split}
    subset = table.subset(table.samples["image_id"].isin(wanted))
    if len(subset) == 0:
        raise SkinkerasError(
            f"none of the run's {split} images were found under {data_root}; "
            "is it the dataset the run was trained on? (use --split all for another dataset)")
    if len(subset) < len(wanted):
        log.warning("%d of the run's %d %s images are missing under %s",
                    len(wanted) - len(subset), len(wanted), split, data_root)
    return subset
