"""The metadata-only random forest of paper 004 (section 4.1): scikit-learn's RandomForestClassifier
on the metadata vector, its trees / depth / leaf size chosen by a lesion-grouped, class-stratified
5-fold grid search on the training cases (scored by mAP), refitted on all of them; its
impurity-based feature importances go into the report (the paper read age and the head / neck
location off them)."""

from __future__ import annotations

import numpy as np

from skinkeras.systems.fusion.stats import map_batched


def map_scorer(num_classes: int):
    """A GridSearchCV scorer: mAP over all `num_classes` classes (a fold may lack one)."""

    def score(estimator, x, y):
        return float(map_batched(y, predict_forest(estimator, x, num_classes)[None])[0])

    return score


def fit_forest(config, x, y, groups, num_classes: int, seed: int):
    """(fitted forest, selection record) for training features `x`, labels `y`, lesion `groups`."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

    f = config.fusion
    grid = {"n_estimators": [int(n) for n in f.forest_trees],
            "max_depth": [int(d) or None for d in f.forest_depths],
            "min_samples_leaf": [int(m) for m in f.forest_min_leaf]}
    folds = StratifiedGroupKFold(n_splits=int(f.forest_folds), shuffle=True, random_state=seed)
    forest = RandomForestClassifier(random_state=seed, n_jobs=1)
    search = GridSearchCV(forest, grid, scoring=map_scorer(num_classes), cv=folds, refit=True, n_jobs=1)
    search.fit(x, y, groups=groups)
    best = search.best_estimator_
    return best, {"best_params": {k: v for k, v in search.best_params_.items()},
                  "cv_map": float(search.best_score_),
                  "grid_size": int(np.prod([len(v) for v in grid.values()])),
                  "summary": f"grid search best {search.best_params_} (CV mAP {search.best_score_:.3f})"}


def predict_forest(forest, x, num_classes: int) -> np.ndarray:
    probabilities = np.zeros((len(x), num_classes))
    probabilities[:, forest.classes_] = forest.predict_proba(x)
    return probabilities
