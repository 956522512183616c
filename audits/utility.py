"""Utility: is the synthetic cohort useful for the task people will use it for, and is it real-like?

- TSTR vs TRTR: for each binary outcome, a gradient-boosted classifier trained on the synthetic
  cohort (TSTR) and one trained on the real training members (TRTR), both tested on the held-out
  real non-members; the check is the AUROC lost (worst outcome).
- Discriminator: a classifier that tries to tell real training stays from synthetic ones,
  cross-validated AUROC (0.5 = indistinguishable).

Features are the whole-stay representation without outcomes, NaN kept (the classifier handles it,
and missingness patterns are part of what a synthetic cohort must get right).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from audits.policy import Parameters
from audits.result import FamilyOutput, Measurement
from audits.stats import auroc_null_allowance, auroc_se, z_value

CV_FOLDS = 3


def classifier(seed: int) -> HistGradientBoostingClassifier:
    """Fixed, modest settings: deterministic for a seed and quick on a few thousand stays."""
    return HistGradientBoostingClassifier(
        max_iter=100,
        max_bins=64,
        learning_rate=0.08,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )


def _fit_auroc(x_train, y_train, x_test, y_test, seed: int) -> float:
    """AUROC on the test set; 0.5 when the training labels have a single class."""
    if len(np.unique(y_train)) < 2:
        return 0.5
    keep = _informative_columns(x_train)
    model = classifier(seed).fit(x_train[:, keep], y_train)
    return float(roc_auc_score(y_test, model.predict_proba(x_test[:, keep])[:, 1]))


def _informative_columns(x: np.ndarray) -> np.ndarray:
    """Columns with at least one value (sklearn's binning fails on an all-NaN column)."""
    return ~np.isnan(x).all(axis=0)


def tstr_table(
    x_train: np.ndarray,
    y_train: pd.DataFrame,
    x_synth: np.ndarray,
    y_synth: pd.DataFrame,
    x_test: np.ndarray,
    y_test: pd.DataFrame,
    outcomes: list[str],
    seed: int,
) -> pd.DataFrame:
    rows = []
    for name in outcomes:
        yt, ys, yh = (df[name].to_numpy(dtype=float) for df in (y_train, y_synth, y_test))
        kt, ks, kh = ~np.isnan(yt), ~np.isnan(ys), ~np.isnan(yh)
        n_pos, n_neg = int((yh[kh] == 1).sum()), int((yh[kh] == 0).sum())
        row = {
            "outcome": name,
            "test_positives": n_pos,
            "test_negatives": n_neg,
            "real_rate": float(np.mean(yt[kt])) if kt.any() else math.nan,
            "synthetic_rate": float(np.mean(ys[ks])) if ks.any() else math.nan,
        }
        if n_pos == 0 or n_neg == 0:
            row.update(trtr=math.nan, tstr=math.nan, gap=math.nan, noise=math.nan)
        else:
            trtr = _fit_auroc(x_train[kt], yt[kt], x_test[kh], yh[kh], seed)
            tstr = _fit_auroc(x_synth[ks], ys[ks], x_test[kh], yh[kh], seed) if ks.any() else 0.5
            se = math.hypot(auroc_se(trtr, n_pos, n_neg), auroc_se(tstr, n_pos, n_neg))
            row.update(trtr=trtr, tstr=tstr, gap=trtr - tstr, noise=se)
        rows.append(row)
    return pd.DataFrame(rows)


def discriminator_auroc(x_real: np.ndarray, x_synth: np.ndarray, seed: int) -> tuple[float, int]:
    """Cross-validated AUROC of real-vs-synthetic on equal-size seeded samples."""
    rng = np.random.default_rng(seed)
    n = min(len(x_real), len(x_synth))
    real = x_real[np.sort(rng.choice(len(x_real), n, replace=False))]
    syn = x_synth[np.sort(rng.choice(len(x_synth), n, replace=False))]
    x = np.vstack([real, syn])
    y = np.r_[np.zeros(n), np.ones(n)]
    proba = np.empty(len(y))
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
    for fit_rows, test_rows in folds.split(x, y):
        keep = _informative_columns(x[fit_rows])  # per fold: a column may be empty in one
        model = classifier(seed).fit(x[np.ix_(fit_rows, keep)], y[fit_rows])
        proba[test_rows] = model.predict_proba(x[np.ix_(test_rows, keep)])[:, 1]
    return float(roc_auc_score(y, proba)), n


def utility_audit(
    x_train: np.ndarray,
    y_train: pd.DataFrame,
    x_holdout: np.ndarray,
    y_holdout: pd.DataFrame,
    x_synth: np.ndarray,
    y_synth: pd.DataFrame,
    binary_outcomes: list[str],
    params: Parameters,
    seed: int = 0,
) -> FamilyOutput:
    zq = z_value(params.noise_alpha)
    out = FamilyOutput()
    table = tstr_table(
        x_train, y_train, x_synth, y_synth, x_holdout, y_holdout, binary_outcomes, seed
    )
    judged = table.dropna(subset=["gap"]) if len(table) else table
    if len(judged):
        worst = judged.loc[judged["gap"].idxmax()]
        detail = "; ".join(
            f"{r.outcome}: TSTR {r.tstr:.3f} vs TRTR {r.trtr:.3f}" for r in judged.itertuples()
        )
        out.measurements.append(
            Measurement("utility_tstr_gap", float(worst["gap"]), detail, noise=zq * worst["noise"])
        )
    else:
        why = "no binary outcome" if not binary_outcomes else "held-out set has a single class"
        out.measurements.append(
            Measurement("utility_tstr_gap", math.nan, f"not measurable: {why}", applicable=False)
        )
    auc, n = discriminator_auroc(x_train, x_synth, seed)
    out.measurements.append(
        Measurement(
            "utility_discriminator_auroc",
            auc,
            f"cross-validated ({CV_FOLDS} folds) AUROC {auc:.3f} on {n} real vs {n} "
            "synthetic stays",
            noise=auroc_null_allowance(n, n, params.noise_alpha),
        )
    )
    out.tables["utility_outcomes"] = table
    out.summary = {"discriminator_auroc": auc, "outcomes": table.to_dict(orient="records")}
    return out
