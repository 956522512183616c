"""Small statistical helpers shared by the audit families (noise allowances, KS, AUROC)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve


def z_value(alpha: float) -> float:
    """Two-sided normal quantile: 3.29 for alpha = 0.001."""
    return float(stats.norm.ppf(1.0 - alpha / 2.0))


def ks_critical(n: float, m: float, alpha: float) -> float:
    """Two-sample KS distance that sampling noise alone exceeds with probability ``alpha``."""
    if n < 1 or m < 1:
        return math.inf
    c = math.sqrt(-0.5 * math.log(alpha / 2.0))
    return c * math.sqrt((n + m) / (n * m))


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (NaN ignored); the statistic only, no p-value."""
    a = np.sort(a[~np.isnan(a)])
    b = np.sort(b[~np.isnan(b)])
    if len(a) == 0 or len(b) == 0:
        return math.nan
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def auroc_null_allowance(n_pos: int, n_neg: int, alpha: float, tests: int = 1) -> float:
    """AUROC a useless score exceeds with probability ``alpha`` (Mann-Whitney null).

    ``tests``: how many attacks the reported value is the best of (Bonferroni). Small samples use
    a seeded Monte Carlo of the exact null (the normal approximation is too thin-tailed there).
    """
    if n_pos < 1 or n_neg < 1:
        return math.inf
    level = 1.0 - alpha / tests
    if n_pos + n_neg <= 200:
        rng = np.random.default_rng(n_pos * 1000 + n_neg)
        ranks = rng.random((_NULL_DRAWS, n_pos + n_neg)).argsort(axis=1).argsort(axis=1) + 1
        u = ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2
        return float(np.quantile(u / (n_pos * n_neg), level))
    se = math.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg))
    return 0.5 + float(stats.norm.ppf(level)) * se


_NULL_DRAWS = 20000


def auroc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUROC."""
    if n_pos < 1 or n_neg < 1 or math.isnan(auc):
        return math.nan
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (
        n_pos * n_neg
    )
    return math.sqrt(max(var, 0.0))


def rank_count_allowance(n_first: int, n_second: int, before: int, alpha: float) -> float:
    """Share of the ``n_first`` group ranked above the ``before``-th of the ``n_second`` group.

    Under exchangeability that count is negative-hypergeometric; this is its 1 - alpha quantile
    as a share. It is the exact null of "TPR at a fixed FPR" (members above the (k+1)-th highest
    non-member) and of "synthetic records closer than the r-th closest held-out record".
    """
    if n_first < 1 or n_second < 1:
        return math.inf
    count = stats.nhypergeom.ppf(1.0 - alpha, n_first + n_second, n_first, before)
    return float(count) / n_first


def tpr_allowance(fpr: float, n_pos: int, n_neg: int, alpha: float) -> float:
    """TPR a useless score reaches by chance at FPR <= ``fpr`` (exact, see above)."""
    return rank_count_allowance(n_pos, n_neg, math.floor(fpr * n_neg) + 1, alpha)


def attack_metrics(scores: np.ndarray, is_member: np.ndarray) -> dict:
    """AUROC, TPR at FPR 1% and 10%, and the ROC curve of a membership score (higher = member)."""
    y = np.asarray(is_member, dtype=int)
    if len(np.unique(y)) < 2:
        return {"auroc": math.nan, "tpr_at_fpr01": math.nan, "tpr_at_fpr10": math.nan}
    fpr, tpr, _ = roc_curve(y, scores)
    return {
        "auroc": float(roc_auc_score(y, scores)),
        "tpr_at_fpr01": float(tpr[fpr <= 0.01].max()),
        "tpr_at_fpr10": float(tpr[fpr <= 0.10].max()),
        "roc": (fpr, tpr),
    }


def proportion_allowance(p: float, n1: float, n2: float, alpha: float) -> float:
    """Difference of two proportions that noise alone exceeds with probability ``alpha``."""
    if n1 < 1 or n2 < 1:
        return math.inf
    return z_value(alpha) * math.sqrt(max(p * (1 - p), 0.0) * (1 / n1 + 1 / n2))
