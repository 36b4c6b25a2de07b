"""Predictions files: the contract between a task's evaluator and everything computed after it.

Every `skinkeras evaluate` writes `predictions.csv` beside its metrics: one row per (model, sample)
with

    model     which model made the prediction ("MobileNetV3Small", "segmented/lc_head", ...)
    id        the sample (image id)
    group     what splits keep together (lesion id)
    fold      the cross-validation fold the sample was tested in ("" outside cross-validation)
    y_true    the true class name ("" when the task has none, e.g. segmentation)
    prob_<c>  the probability of class c, one column per class in the model's order
    score_<s> a per-sample score (e.g. segmentation's Jaccard), for tasks without probabilities

Metrics with BCa intervals, ensembles, operating points, out-of-fold merges and paired
permutation tests between runs (`skinkeras compare`) are all computed from these files, so any
set of runs can be compared. Floats are written at full precision (reading a file back gives the
same numbers), so scores computed from a file equal those computed at evaluation time.

Example:
    >>> p = Predictions.from_probabilities(ids=["a", "b"], probabilities=[[.9, .1], [.2, .8]],
    ...                                    class_names=["ben", "mal"], y_true=["ben", "mal"])
    >>> p.labels().tolist(), p.class_names
    ([0, 1], ('ben', 'mal'))
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from skinkeras.errors import SkinkerasError

MODEL, ID, GROUP, FOLD, Y_TRUE = "model", "id", "group", "fold", "y_true"
KEY_COLUMNS = (MODEL, ID, GROUP, FOLD, Y_TRUE)
PROB_PREFIX = "prob_"
SCORE_PREFIX = "score_"


@dataclasses.dataclass(frozen=True)
class Predictions:
    """A table of predictions (see the module docstring); `frame` keeps the file's columns."""

    frame: pd.DataFrame

    def __post_init__(self):
        missing = [c for c in KEY_COLUMNS if c not in self.frame.columns]
        if missing:
            raise SkinkerasError(f"a predictions table needs the columns {list(KEY_COLUMNS)}; missing {missing}")

    # Building.

    @classmethod
    def from_probabilities(cls, *, ids: Sequence, probabilities, class_names: Sequence[str],
                           y_true: Sequence | None = None, groups: Sequence | None = None,
                           model: str = "model", fold: int | Sequence | None = None) -> "Predictions":
        """Predictions of one model. `y_true`: class names or indices into `class_names`."""
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if probabilities.ndim != 2 or probabilities.shape[1] != len(class_names):
            raise ValueError(f"probabilities must be (n, {len(class_names)}). Received shape {probabilities.shape}")
        frame = cls._keys(ids, class_names, y_true, groups, model, fold, len(probabilities))
        for k, name in enumerate(class_names):
            frame[PROB_PREFIX + name] = probabilities[:, k]
        return cls(frame)

    @classmethod
    def from_scores(cls, *, ids: Sequence, scores: dict, groups: Sequence | None = None, model: str = "model",
                    fold: int | Sequence | None = None) -> "Predictions":
        """Per-sample scores of one model (`scores`: name -> (n,) values), for tasks without classes."""
        n = len(ids)
        frame = cls._keys(ids, (), None, groups, model, fold, n)
        for name, values in scores.items():
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (n,):
                raise ValueError(f"score {name!r} must have one value per sample ({n}). Received {values.shape}")
            frame[SCORE_PREFIX + name] = values
        return cls(frame)

    @staticmethod
    def _keys(ids, class_names, y_true, groups, model, fold, n) -> pd.DataFrame:
        ids = [str(i) for i in ids]
        if len(ids) != n:
            raise ValueError(f"{len(ids)} ids for {n} predictions")
        if y_true is None:
            labels = [""] * n
        else:
            labels = [class_names[int(v)] if isinstance(v, (int, np.integer)) else str(v) for v in y_true]
            if len(labels) != n:
                raise ValueError(f"{len(labels)} labels for {n} predictions")
        folds = [fold] * n if fold is None or np.isscalar(fold) else list(fold)
        return pd.DataFrame({
            MODEL: [str(model)] * n,
            ID: ids,
            GROUP: ids if groups is None else [str(g) for g in groups],
            FOLD: pd.array([None if _missing(f) else int(f) for f in folds], dtype="Int64"),
            Y_TRUE: labels,
        })

    @classmethod
    def concat(cls, parts: Iterable["Predictions"]) -> "Predictions":
        parts = list(parts)
        if not parts:
            raise SkinkerasError("no predictions to combine")
        names = {part.class_names for part in parts if part.class_names}
        if len(names) > 1:
            raise SkinkerasError(f"predictions with different classes cannot be combined: {sorted(names)}")
        return cls(pd.concat([p.frame for p in parts], ignore_index=True))

    # Files.

    def write(self, path) -> Path:
        """Writes the CSV atomically (full float precision)."""
        from skinkeras.files import atomic_write_text

        return atomic_write_text(path, self.frame.to_csv(index=False, float_format="%.17g"))

    @classmethod
    def read(cls, path) -> "Predictions":
        path = Path(path)
        if not path.is_file():
            raise SkinkerasError(f"no predictions file at {path} (written by skinkeras evaluate)")
        try:
            frame = pd.read_csv(path, dtype={MODEL: str, ID: str, GROUP: str, Y_TRUE: str}, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise SkinkerasError(f"cannot read predictions {path}: {error}") from None
        if FOLD in frame:
            frame[FOLD] = pd.array([None if _missing(v) else int(v) for v in frame[FOLD]], dtype="Int64")
        for column in frame.columns:
            if column.startswith((PROB_PREFIX, SCORE_PREFIX)):
                frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
        return cls(frame)

    # Reading.

    def __len__(self):
        return len(self.frame)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c[len(PROB_PREFIX):] for c in self.frame.columns if c.startswith(PROB_PREFIX))

    @property
    def score_names(self) -> tuple[str, ...]:
        return tuple(c[len(SCORE_PREFIX):] for c in self.frame.columns if c.startswith(SCORE_PREFIX))

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(self.frame[MODEL]))

    @property
    def ids(self) -> np.ndarray:
        return self.frame[ID].to_numpy(dtype=str)

    @property
    def groups(self) -> np.ndarray:
        return self.frame[GROUP].to_numpy(dtype=str)

    def select(self, model: str) -> "Predictions":
        """The rows of one model (an error naming the models there are)."""
        rows = self.frame[self.frame[MODEL] == model]
        if rows.empty:
            raise SkinkerasError(f"no predictions of model {model!r}; models: {', '.join(self.models)}")
        return Predictions(rows.reset_index(drop=True))

    def split_by_model(self) -> dict[str, "Predictions"]:
        return {model: self.select(model) for model in self.models}

    def probabilities(self) -> np.ndarray:
        columns = [PROB_PREFIX + name for name in self.class_names]
        if not columns:
            raise SkinkerasError("these predictions hold no class probabilities")
        return self.frame[columns].to_numpy(dtype=np.float64)

    def scores(self, name: str) -> np.ndarray:
        return self.frame[SCORE_PREFIX + name].to_numpy(dtype=np.float64)

    def labels(self, class_names: Sequence[str] | None = None) -> np.ndarray:
        """The true classes as indices into `class_names` (default: the file's own classes)."""
        names = list(class_names or self.class_names)
        index = {name: k for k, name in enumerate(names)}
        unknown = sorted(set(self.frame[Y_TRUE]) - set(index))
        if unknown:
            raise SkinkerasError(f"true labels {unknown} are not among the classes {names}")
        return self.frame[Y_TRUE].map(index).to_numpy(dtype=np.int64)

    def with_model(self, model: str) -> "Predictions":
        return Predictions(self.frame.assign(**{MODEL: model}))

    def with_fold(self, fold: int | None) -> "Predictions":
        return Predictions(self.frame.assign(**{FOLD: pd.array([fold] * len(self.frame), dtype="Int64")}))

    def aligned_to(self, ids: Sequence[str]) -> "Predictions":
        """The rows for `ids`, in that order (an error naming what is missing); one model only."""
        if len(self.models) > 1:
            raise SkinkerasError(f"align one model's predictions at a time; these hold {self.models}")
        frame = self.frame.set_index(ID, drop=False)
        if frame.index.has_duplicates:
            raise SkinkerasError("predictions repeat a sample id")
        missing = [i for i in ids if i not in frame.index]
        if missing:
            raise SkinkerasError(f"{len(missing)} samples have no prediction, e.g. {missing[:5]}")
        return Predictions(frame.loc[list(ids)].reset_index(drop=True))


def _missing(value) -> bool:
    """No fold: None, "", NaN or pandas' NA."""
    return value is None or (isinstance(value, str) and value == "") or bool(pd.isna(value))
