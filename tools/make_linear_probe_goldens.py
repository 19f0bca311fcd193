#!/usr/bin/env python3
"""Goldens for the linear probe (tests/linear_probe.rs) from scikit-learn.

A small deterministic dataset: 300 x 16 features drawn from 4 overlapping
Gaussian classes, L2-normalised and stored as float32. For a few C values,
sklearn's LogisticRegression (lbfgs, multinomial, tight tolerance) is fitted on
exactly those float32 values and coef_, intercept_ and predict_proba are saved.

sklearn minimises C * sum_i CE_i + 0.5 ||W||^2, i.e. the same optimum as
mean CE + (l2 / 2) ||W||^2 with l2 = 1 / (C * n).

Usage: /work/venv/bin/python tools/make_linear_probe_goldens.py
(writes tests/fixtures/linear_probe/goldens.json)
"""
import json
import os

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

N, D, K = 300, 16, 4
C_VALUES = [0.1, 1.0, 10.0]


def main():
    rng = np.random.default_rng(20240607)
    centres = rng.normal(size=(K, D))
    y = np.repeat(np.arange(K), N // K)
    rng.shuffle(y)
    x = centres[y] * 0.6 + rng.normal(size=(N, D))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = x.astype(np.float32)
    x64 = x.astype(np.float64)

    fits = []
    for c in C_VALUES:
        clf = LogisticRegression(C=c, max_iter=5000, tol=1e-10)
        clf.fit(x64, y)
        fits.append(
            {
                "C": c,
                "l2": 1.0 / (c * N),
                "coef": clf.coef_.ravel().tolist(),
                "intercept": clf.intercept_.tolist(),
                "proba": clf.predict_proba(x64).ravel().tolist(),
                "train_accuracy": float(clf.score(x64, y)),
                "n_iter": int(clf.n_iter_[0]),
            }
        )

    out = {
        "generator": "tools/make_linear_probe_goldens.py",
        "sklearn_version": sklearn.__version__,
        "n": N,
        "d": D,
        "c": K,
        "x": [float(v) for v in x.ravel()],
        "y": [int(v) for v in y],
        "fits": fits,
    }
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "linear_probe", "goldens.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print(f"wrote {os.path.normpath(path)}: " + ", ".join(
        f"C={ft['C']} iters={ft['n_iter']} acc={ft['train_accuracy']:.3f}" for ft in fits))


if __name__ == "__main__":
    main()
