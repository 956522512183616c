"""Within-patient (lagged) correlations pooled over patients, with a patient-level bootstrap.

Why a bootstrap: for sparse variables a pooled correlation is dominated by the few patients with
many measurements, so "number of patients" badly overstates the information in it. Resampling
patients (via per-patient sufficient statistics, so each replicate costs one matrix product)
gives a standard error that knows this, and the noise allowance of the temporal checks uses it.
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP = 100
MIN_PAIRS = 3


def demeaned(z: np.ndarray) -> np.ndarray:
    """Each patient's values minus that patient's own mean, per variable (``z[n, t, v]``)."""
    mask = ~np.isnan(z)
    count = mask.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(mask, z, 0.0).sum(axis=1, keepdims=True) / count
    return z - mean


def _pairs(zc: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    a, b = (zc, zc) if lag == 0 else (zc[:, :-lag], zc[:, lag:])
    ma, mb = ~np.isnan(a), ~np.isnan(b)
    return np.where(ma, a, 0.0), np.where(mb, b, 0.0), ma.astype(float), mb.astype(float)


def cross_sums(zc: np.ndarray, lag: int) -> np.ndarray:
    """Per-patient sums for corr(x_v(t), x_w(t + lag)): ``[n, v*w, 6]``."""
    a0, b0, fa, fb = _pairs(zc, lag)
    n, _, v = a0.shape
    ta = np.ascontiguousarray(a0.transpose(0, 2, 1))
    tfa = np.ascontiguousarray(fa.transpose(0, 2, 1))
    parts = (tfa @ fb, ta @ fb, tfa @ b0, (ta**2) @ fb, tfa @ (b0**2), ta @ b0)
    return np.stack([p.reshape(n, v * v) for p in parts], axis=-1)


def auto_sums(zc: np.ndarray, lag: int) -> np.ndarray:
    """Per-patient sums for corr(x_v(t), x_v(t + lag)): ``[n, v, 6]``."""
    a, b = zc[:, :-lag], zc[:, lag:]
    m = ~np.isnan(a) & ~np.isnan(b)
    a0, b0 = np.where(m, a, 0.0), np.where(m, b, 0.0)
    parts = (m, a0, b0, a0**2, b0**2, a0 * b0)
    return np.stack([p.sum(axis=1, dtype=float) for p in parts], axis=-1)


def correlation_from_sums(s: np.ndarray) -> np.ndarray:
    cnt, sx, sy, sxx, syy, sxy = np.moveaxis(s, -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        num = cnt * sxy - sx * sy
        den = np.sqrt(np.maximum(cnt * sxx - sx**2, 0) * np.maximum(cnt * syy - sy**2, 0))
        return np.where((cnt >= MIN_PAIRS) & (den > 1e-12), num / den, np.nan)


def bootstrap_correlation(sums: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correlation, bootstrap standard error, contributing patients), each of shape ``[k]``."""
    n = sums.shape[0]
    r = correlation_from_sums(sums.sum(axis=0))
    patients = (sums[:, :, 0] > 0).sum(axis=0)
    if n < 2:
        return r, np.full_like(r, np.inf), patients
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=BOOTSTRAP)
    boot = correlation_from_sums(np.tensordot(weights.astype(float), sums, axes=(1, 0)))
    ok = np.isfinite(boot)
    valid = ok.sum(axis=0)
    b0 = np.where(ok, boot, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = b0.sum(axis=0) / valid
        var = np.where(ok, (boot - mean) ** 2, 0.0).sum(axis=0) / (valid - 1)
    se = np.where(valid >= BOOTSTRAP // 2, np.sqrt(var), np.inf)
    return r, se, patients


def acf_curve(zc: np.ndarray, lags: tuple[int, ...]) -> np.ndarray:
    """``acf[lag_index, v]`` (no bootstrap): the curves drawn in the report."""
    return np.array([correlation_from_sums(auto_sums(zc, lag).sum(axis=0)) for lag in lags])
