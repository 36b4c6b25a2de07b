"""Ensembles over several classifiers' probabilities (paper 002's second stage and its baselines).

Every ensemble has one interface: `fit(probs, y)` with `probs` a list of (n, C) probability arrays
(one per model, same rows) and `y` the (n,) class indices, then `predict_proba(probs) -> (n, C)`.
The paper fits its combiners on validation predictions and reports on the test set; so do we.
`ensemble_predictions` does the same on predictions files (`skinkeras.evaluation.predictions`):
any set of runs' models combined on the samples they share.

- `average`: mean of the models' probabilities (no fitting).
- `max`: per-class maximum over the models, renormalised to sum to 1 (no fitting).
- `lc_head`: the 423-parameter locally connected head (`skinkeras.models.ensemble_head`), trained
  full-batch with Adam + categorical cross-entropy for a fixed number of epochs, seeded.
- `svc`, `random_forest`, `extra_trees`, `knn`, `gradient_boosting`: scikit-learn stackers on the
  concatenated probabilities (n, models * C), seeded where the estimator is random.

    >>> ensemble = make_ensemble("average").fit([p1, p2], y_val)  # doctest: +SKIP
    >>> ensemble.predict_proba([q1, q2]).shape  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from skinkeras.errors import SkinkerasError


def _check_probs(probs, num_classes: int | None = None) -> list[np.ndarray]:
    arrays = [np.asarray(p, dtype=np.float64) for p in probs]
    if not arrays:
        raise ValueError("an ensemble needs at least one model's probabilities. Received: []")
    shape = arrays[0].shape
    if len(shape) != 2:
        raise ValueError(f"probabilities must be (n, classes) arrays. Received shape {shape}")
    for array in arrays:
        if array.shape != shape:
            raise ValueError(f"every model's probabilities must have one shape. Received {[a.shape for a in arrays]}")
    if num_classes is not None and shape[1] != num_classes:
        raise ValueError(f"expected {num_classes} classes as at fit time. Received shape {shape}")
    return arrays


class Ensemble:
    """Base class: `fit` records the number of models and classes; subclasses add what they learn."""

    name = "ensemble"

    def fit(self, probs, y):
        arrays = _check_probs(probs)
        y = np.asarray(y, dtype=np.int64)
        if y.shape != (arrays[0].shape[0],):
            raise ValueError(f"y must have one label per row ({arrays[0].shape[0]}). Received shape {y.shape}")
        self.num_models, self.num_classes = len(arrays), arrays[0].shape[1]
        self._fit(arrays, y)
        return self

    def predict_proba(self, probs) -> np.ndarray:
        if not hasattr(self, "num_classes"):
            raise RuntimeError(f"{self.name}: call fit() before predict_proba()")
        arrays = _check_probs(probs, self.num_classes)
        if len(arrays) != self.num_models:
            raise ValueError(f"{self.name} was fitted on {self.num_models} models. Received {len(arrays)}")
        return self._predict(arrays)

    def _fit(self, arrays, y):
        pass

    def _predict(self, arrays) -> np.ndarray:
        raise NotImplementedError


class AverageEnsemble(Ensemble):
    name = "average"

    def _predict(self, arrays):
        return np.mean(arrays, axis=0)


class MaxEnsemble(Ensemble):
    name = "max"

    def _predict(self, arrays):
        top = np.max(arrays, axis=0)
        return top / top.sum(axis=1, keepdims=True)


class LCHeadEnsemble(Ensemble):
    """The locally connected head of paper 002 (423 parameters for 5 models x 3 classes)."""

    name = "lc_head"

    def __init__(self, *, epochs: int = 500, learning_rate: float = 0.01, hidden_units: int = 20, seed: int = 0):
        self.epochs, self.learning_rate, self.hidden_units, self.seed = epochs, learning_rate, hidden_units, seed
        self.model = None

    def _inputs(self, arrays):
        return {f"model_{i}": a.astype("float32") for i, a in enumerate(arrays)}

    def _fit(self, arrays, y):
        import keras

        from skinkeras.models.ensemble_head import build_ensemble_head

        keras.utils.set_random_seed(self.seed)
        self.model = build_ensemble_head(len(arrays), arrays[0].shape[1], hidden_units=self.hidden_units)
        self.model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="categorical_crossentropy")
        import tensorflow as tf

        targets = np.eye(self.num_classes, dtype="float32")[y]
        # Full batch, a few hundred rows: `epochs` steps of one fit call (one fit epoch per step
        # costs ~0.25 s of callback overhead each on CPU, 100x the step itself).
        steps = tf.data.Dataset.from_tensors((self._inputs(arrays), targets)).repeat(self.epochs)
        self.model.fit(steps, epochs=1, steps_per_epoch=self.epochs, shuffle=False, verbose=0)

    def _predict(self, arrays):
        return np.asarray(self.model.predict_on_batch(self._inputs(arrays)), dtype=np.float64)

    def save(self, path) -> None:
        self.model.save(path)

    @classmethod
    def load(cls, path, num_models: int, num_classes: int) -> "LCHeadEnsemble":
        """A fitted head saved by `save` (the `.keras` file, loaded in safe mode)."""
        from skinkeras.saving import load_model

        ensemble = cls()
        ensemble.model = load_model(path, compile=False)
        ensemble.num_models, ensemble.num_classes = num_models, num_classes
        return ensemble


class SklearnStacker(Ensemble):
    """A scikit-learn classifier on the concatenated probabilities of all models."""

    def __init__(self, name: str, estimator):
        self.name, self.estimator = name, estimator

    def _fit(self, arrays, y):
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*probability.*deprecated", category=FutureWarning)
            self.estimator.fit(np.concatenate(arrays, axis=1), y)

    def _predict(self, arrays):
        proba = self.estimator.predict_proba(np.concatenate(arrays, axis=1))
        # A class missing from the fitting labels has no column: give it probability 0.
        full = np.zeros((proba.shape[0], self.num_classes))
        full[:, np.asarray(self.estimator.classes_, dtype=np.int64)] = proba
        return full


def _stacker(name: str, seed: int) -> SklearnStacker:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    estimators = {
        # The paper's SVC with Platt-scaled probabilities. scikit-learn 1.9 deprecates
        # probability=True for CalibratedClassifierCV, whose stratified folds fail on validation
        # sets with a class of fewer than 5 images; libsvm's internal CV does not.
        "svc": lambda: SVC(probability=True, random_state=seed),
        "random_forest": lambda: RandomForestClassifier(n_estimators=200, random_state=seed),
        "extra_trees": lambda: ExtraTreesClassifier(n_estimators=200, random_state=seed),
        "knn": lambda: KNeighborsClassifier(n_neighbors=5),
        "gradient_boosting": lambda: GradientBoostingClassifier(random_state=seed),
    }
    return SklearnStacker(name, estimators[name]())


STACKERS = ("svc", "random_forest", "extra_trees", "knn", "gradient_boosting")
ENSEMBLES = ("average", "max", "lc_head", *STACKERS)


def make_ensemble(name: str, *, seed: int = 0, lc_epochs: int = 500, lc_learning_rate: float = 0.01) -> Ensemble:
    """An unfitted ensemble by name (one of `ENSEMBLES`)."""
    if name == "average":
        return AverageEnsemble()
    if name == "max":
        return MaxEnsemble()
    if name == "lc_head":
        return LCHeadEnsemble(epochs=lc_epochs, learning_rate=lc_learning_rate, seed=seed)
    if name in STACKERS:
        return _stacker(name, seed)
    raise SkinkerasError(f"unknown ensemble {name!r}; valid: {', '.join(ENSEMBLES)}")


FIT_FREE = ("average", "max")


def ensemble_predictions(parts, name: str = "average", *, fit_on=None, model: str | None = None, seed: int = 0):
    """One model's `Predictions` combining several models' predictions on their common samples.

    Args:
        parts: `Predictions` of one model each (e.g. two runs' evaluations), same classes.
        name: one of `ENSEMBLES`; all but "average" and "max" are fitted first, on `fit_on`
            (the same models' predictions on other samples, e.g. the validation split).
        model: the new model's name (default "<name>(<model a>+<model b>...)").
    """
    from skinkeras.evaluation.predictions import Predictions

    parts = list(parts)
    if len(parts) < 2:
        raise SkinkerasError(f"an ensemble combines at least two models. Received {len(parts)}")
    ids = [i for i in parts[0].ids if all(i in set(p.ids) for p in parts[1:])]
    if not ids:
        raise SkinkerasError("the models' predictions share no sample")
    aligned = [p.aligned_to(ids) for p in parts]
    class_names = aligned[0].class_names
    ensemble = make_ensemble(name, seed=seed)
    if name not in FIT_FREE:
        if fit_on is None:
            raise SkinkerasError(f"the {name} ensemble is fitted: give the models' predictions on other samples (fit_on)")
        fit_ids = [i for i in fit_on[0].ids if all(i in set(p.ids) for p in fit_on[1:])]
        fitting = [p.aligned_to(fit_ids) for p in fit_on]
        ensemble.fit([p.probabilities() for p in fitting], fitting[0].labels(class_names))
    else:
        ensemble.fit([p.probabilities() for p in aligned], aligned[0].labels(class_names))
    probabilities = ensemble.predict_proba([p.probabilities() for p in aligned])
    first = aligned[0].frame
    return Predictions.from_probabilities(
        ids=ids, probabilities=probabilities, class_names=class_names, y_true=first["y_true"].tolist(),
        groups=first["group"].tolist(), fold=first["fold"].tolist(),
        model=model or f"{name}({'+'.join(p.models[0] for p in parts)})")
