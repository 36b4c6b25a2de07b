"""A quick EIS-only proxy used to calibrate the semi-synthetic set's effect size (NOT paper 000's GRU).

    python -m skinkeras.data.synth.eis_proxy --root HAM_DIR --effect-size 0.025 0.03 [--seeds 0 1 2]

For each effect size it draws the default paired set's labels and spectra (no files written: the
same `pick_lesions` + `draw_spectra` as the generator), takes each lesion's mean of the 700 features,
standardises them and fits a logistic regression in 5-fold stratified CV; the AUC is computed on the
out-of-fold scores of benign + melanoma lesions (paper 000's evaluated set). Why a proxy: the GRU
lives in skinkeras.systems.eis and needs TensorFlow and many epochs per fold; the proxy needs about
one minute per effect size and seed on 2 busy cores (lbfgs on 700 collinear features).
scikit-learn is imported here only, never by the data layer. Beware: this linear proxy reads the
generator's depth-profile effect far better than neural models do (see the calibration table in
`skinkeras.data.synth.eis_paired`), so its AUC is an upper bound, not a stand-in for the GRU.
"""

from __future__ import annotations

import argparse

import numpy as np


def proxy_auc(labels, diagnoses, spectra, seed: int = 0) -> float:
    """Out-of-fold AUC (benign + melanoma) of standardised per-lesion mean features -> logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skinkeras.data.eis import spectra_to_features

    x = np.stack([spectra_to_features(s).mean(0) for s in spectra])
    y = (np.asarray(labels) == "malignant").astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    evaluated = (y == 0) | (np.asarray(diagnoses) == "melanoma")
    return float(roc_auc_score(y[evaluated], scores[evaluated]))


def main(argv=None) -> int:
    from skinkeras.data.ham10000 import load_ham10000
    from skinkeras.data.synth.eis_paired import DEFAULT_LESIONS, draw_spectra, ham_lesions, pick_lesions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="the HAM10000 folder")
    parser.add_argument("--effect-size", type=float, nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lesions", default=str(DEFAULT_LESIONS))
    args = parser.parse_args(argv)
    lesions = ham_lesions(load_ham10000(args.root).samples)
    n = args.lesions if args.lesions == "all" else int(args.lesions)
    for effect_size in args.effect_size:
        aucs = []
        for seed in args.seeds:
            picked = pick_lesions(lesions, n, seed)
            spectra = draw_spectra(picked["label"], seed, effect_size)
            aucs.append(proxy_auc(picked["label"], picked["diagnosis"], spectra, seed))
        print(f"effect size {effect_size:g}: proxy AUC {np.mean(aucs):.3f} (seeds {args.seeds}: "
              f"{', '.join(f'{a:.3f}' for a in aucs)})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
