"""Calibration-in-the-large of measurement rates and lag-1 persistence (post-processing).

A model trained under DP-SGD gets the *shape* of a stay right (bursty, state-dependent
measurement; mean-reverting values) but two families of numbers drift: each variable's overall
measurement rate (the mask heads carry little gradient signal per step, and sampling its own
history compounds small errors over 48 steps) and how strongly a value follows the previous one
(the lag-1 autocorrelation the temporal audits judge). Both are cheap to release precisely, as
one Gaussian mechanism each on a short per-patient vector whose cost the accountant composes with
DP-SGD (:func:`release_targets`), and :func:`calibrate` then moves one bias per variable and
target — the measurement bias, the log-odds of the weight on the last value — until stays
sampled from the model reproduce the released figures. The lag-1 sums also give each numeric
variable's within-stay spread; DP noise leaves synthetic values too variable (Temp: sd 2.0 vs
0.9 on PhysioNet 2012), so the value noise (log σ of the mixture) is brought down to it, never
up. The rates release also carries the classes of the hidden severity score (module
:mod:`severity`), which sampling is calibrated to. Everything after the releases is
post-processing of DP outputs and costs no privacy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from clinsynth.generator.dp import clip_rows, gaussian_sum
from clinsynth.generator.encoding import Encoding
from clinsynth.generator.model import StayModel
from clinsynth.generator.sampling import sample_raw

RATES_CLIP = 3.0  # l2 bound of one patient's rate vector (public; typical ICU stays: ~2)
LAG_CLIP = 1.5  # l2 bound of one patient's lag-1 sums vector (public; simulated stays:
# median 0.7, 90th percentile 1.6)
LAG_Z_CLIP = 3.0  # demeaned values enter the lag-1 sums clipped to ±3 standardised units
SIGMA_TIMES_EPS = 12.0  # noise multiplier 12/ε per release: 3 at ε = 4 (rate noise ~0.45 pp)
RELIABLE = 10.0  # a lag-1 target is used only if its sums are 10 noise sd above zero
CALIBRATION_STAYS = 3000  # stays sampled per calibration round (a 2-pp target needs the
# Monte Carlo error of a round well below 1 pp: patients differ a lot in how often they are
# measured, e.g. invasive vs non-invasive blood pressure)
CALIBRATION_ROUNDS = 6
MIN_RATE = 1e-4  # released rates are clipped to [MIN_RATE, 1 - MIN_RATE]
LAG_GAIN = 5.0  # log-odds of the last-value weight per unit of autocorrelation gap (~1/slope)
MAX_STEP = 3.0  # no single round moves a bias by more than this (log-odds)
MAX_SPREAD_STEP = 0.5  # nor a log σ by more than this


def release_sigma(epsilon: float) -> float:
    """Noise multiplier of each of the two releases for a total budget ε (both together add
    about 10% to the DP-SGD noise)."""
    return SIGMA_TIMES_EPS / epsilon


@dataclass
class Targets:
    """Released calibration targets, per variable (NaN lag-1 target: not calibrated)."""

    rates: np.ndarray  # [V] share of measured grid cells
    lag1: np.ndarray  # [V] pooled within-patient lag-1 autocorrelation (numeric variables)
    rate_noise_sd: float  # noise sd on each released rate
    outcome_rates: list[np.ndarray]  # per outcome field: class probabilities
    severity_rates: np.ndarray | None = None  # of the severity score's classes (module severity)
    spread: np.ndarray | None = None  # [V] mean per-patient lag-1 Σ(a² + b²)/2: within-stay
    # variability of the numeric variables (NaN: not calibrated)

    def to_dict(self) -> dict:
        return {
            "rates": self.rates.tolist(),
            "lag1": _nan_list(self.lag1),
            "rate_noise_sd": self.rate_noise_sd,
            "outcome_rates": [r.tolist() for r in self.outcome_rates],
            "severity_rates": None if self.severity_rates is None else self.severity_rates.tolist(),
            "spread": None if self.spread is None else _nan_list(self.spread),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Targets:
        lag1 = _from_nan_list(d["lag1"])
        outcomes = [np.asarray(r, dtype=np.float64) for r in d["outcome_rates"]]
        rates = np.asarray(d["rates"], dtype=np.float64)
        severity = d.get("severity_rates")
        severity = None if severity is None else np.asarray(severity, dtype=np.float64)
        spread = None if d.get("spread") is None else _from_nan_list(d["spread"])
        return cls(rates, lag1, float(d["rate_noise_sd"]), outcomes, severity, spread)


def _nan_list(a: np.ndarray) -> list[float | None]:
    return [None if np.isnan(r) else float(r) for r in a]


def _from_nan_list(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if r is None else r for r in values], dtype=np.float64)


def lag1_sums(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per patient, per variable: (Σ a·b, Σ a², Σ b²) / (T - 1) over adjacent measured steps,
    with a, b the patient-demeaned values clipped to ±:data:`LAG_Z_CLIP`: ``[N, V, 3]``."""
    seen = m > 0
    count = seen.sum(axis=1, keepdims=True)
    mean = np.where(seen, x, 0.0).sum(axis=1, keepdims=True) / np.maximum(count, 1)
    zc = np.clip(np.where(seen, x - mean, 0.0), -LAG_Z_CLIP, LAG_Z_CLIP)
    pair = seen[:, :-1] & seen[:, 1:]
    a, b = np.where(pair, zc[:, :-1], 0.0), np.where(pair, zc[:, 1:], 0.0)
    sums = np.stack([(a * b).sum(1), (a * a).sum(1), (b * b).sum(1)], axis=-1)
    return sums / max(x.shape[1] - 1, 1)


def lag1_from_sums(sums: np.ndarray) -> np.ndarray:
    """Pooled autocorrelation ``[V]`` from summed ``[V, 3]`` lag-1 sums (NaN where undefined)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        den = np.sqrt(np.clip(sums[:, 1], 0, None) * np.clip(sums[:, 2], 0, None))
        return np.where(den > 0, np.clip(sums[:, 0] / den, -1, 1), np.nan)


def release_targets(
    x: np.ndarray,
    m: np.ndarray,
    codes: np.ndarray,
    encoding: Encoding,
    gen: torch.Generator,
    sigma: float,
) -> Targets:
    """The two Gaussian releases, from model-space values and masks ``[N, T, V]`` and the
    static/outcome class ``codes [N, S]``.

    Rates: each patient's share of measured steps per variable (a vector in [0, 1]^V) and the
    one-hot class of each outcome field and of the severity score, clipped to
    :data:`RATES_CLIP`. Lag-1: each patient's
    :func:`lag1_sums` of the numeric variables, clipped to :data:`LAG_CLIP`. Sums get noise of
    sd ``sigma * clip`` and are divided by N (public). ``sigma = 0``: exact (no DP only).
    """
    rated = [encoding.severity_index, *range(encoding.n_static, len(encoding.statics))]
    rated_codes = [(codes[:, k], encoding.statics[k].n_classes) for k in rated]
    n, v = m.shape[0], m.shape[2]
    one_hot = [np.eye(k)[codes] for codes, k in rated_codes]
    rows = np.concatenate([m.mean(axis=1).astype(np.float64), *one_hot], axis=1)
    released = gaussian_sum(rows, RATES_CLIP, sigma, gen) / n
    rate_sd = sigma * RATES_CLIP / max(n, 1)
    rates, pos, class_rates = released[:v], v, []
    for i, (_, k) in enumerate(rated_codes):
        shares = released[pos : pos + k]
        if i == 0:  # most of the score's bins are empty: noise there is not a rare class
            shares = shares - rate_sd
        probs = np.clip(shares, MIN_RATE, None)
        class_rates.append(probs / probs.sum())
        pos += k
    idx = encoding.indices("gauss")
    sums = lag1_sums(x[..., idx].astype(np.float64), m[..., idx])
    total = gaussian_sum(sums.reshape(n, -1), LAG_CLIP, sigma, gen).reshape(len(idx), 3)
    lag1 = np.full(v, np.nan)
    reliable = np.minimum(total[:, 1], total[:, 2]) >= RELIABLE * sigma * LAG_CLIP
    lag1[idx] = np.where(reliable, lag1_from_sums(total), np.nan)
    spread = np.full(v, np.nan)
    spread[idx] = np.where(reliable, (total[:, 1] + total[:, 2]) / 2 / n, np.nan)
    rates = np.clip(rates, MIN_RATE, 1 - MIN_RATE)
    return Targets(rates, lag1, rate_sd, class_rates[1:], class_rates[0], spread)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, MIN_RATE, 1 - MIN_RATE)
    return np.log(p / (1 - p))


@torch.no_grad()
def calibrate(
    model: StayModel,
    encoding: Encoding,
    targets: Targets,
    seed: int,
    n: int = CALIBRATION_STAYS,
    rounds: int = CALIBRATION_ROUNDS,
) -> dict[str, list[float]]:
    """Move each variable's measurement bias, last-value-weight bias and value noise towards
    ``targets``.

    Each round samples ``n`` stays (fixed seeds: deterministic), compares each variable's share
    of measured cells, its lag-1 autocorrelation and its spread with the targets, and moves the
    biases by the log-odds difference (rates), :data:`LAG_GAIN` times the gap (lag-1) or half
    the log ratio (spread, log σ: only down), with step sizes
    1, 1, 1, 1/2, 1/3, ... (Robbins-Monro: later rounds average out the Monte Carlo noise of
    earlier ones instead of chasing it). A bias shift moves every state alike, so the pattern
    the model learned is kept. Returns the worst absolute gaps measured in each round (rates
    in percentage points), the last one after the final update.
    """
    mask_bias = model.mask_head.bias
    k = model.config.n_mix
    values = model.value_head.bias.view(model.n_vars, model.n_params)
    persistence, log_sigma = values[:, 3 * k], values[:, 2 * k : 3 * k]
    lagged = ~np.isnan(targets.lag1)
    target_spread = (
        np.full(encoding.n_variables, np.nan) if targets.spread is None else targets.spread
    )
    numeric = encoding.indices("gauss")
    gaps: dict[str, list[float]] = {"rate_pp": [], "lag1": [], "spread_log": []}
    for i in range(rounds + 1):
        raw = sample_raw(model, encoding, n, seed + i, severity_rates=targets.severity_rates)
        rate = raw.m.mean(axis=(0, 1))
        lag1, spread = _lag1_and_spread(raw.x, raw.m, numeric)
        lag_gap = np.where(lagged & ~np.isnan(lag1), targets.lag1 - lag1, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            spread_gap = np.log(target_spread / spread)
        spread_gap = np.where(np.isfinite(spread_gap), spread_gap, 0.0)
        gaps["rate_pp"].append(float(np.abs(rate - targets.rates).max() * 100))
        gaps["lag1"].append(float(np.abs(lag_gap).max()))
        gaps["spread_log"].append(float(np.abs(spread_gap).max()))
        if i == rounds:
            break
        weight = 1.0 / max(1, i - 1)  # 1, 1, 1, 1/2, 1/3, ...
        # rates near 0 or 1 move slowly in log-odds: the full step under-shoots, never over
        step = _logit(targets.rates) - _logit(np.clip(rate, 0.5 / (n * encoding.n_steps), 1.0))
        mask_bias += _as(np.clip(step, -MAX_STEP, MAX_STEP) * weight, mask_bias)
        persistence += _as(np.clip(LAG_GAIN * lag_gap, -MAX_STEP, MAX_STEP) * weight, mask_bias)
        # variance scales with σ²: half the log ratio, on every component alike. Only down:
        # the spread is a per-patient-clipped sum over all variables, so noise added to one
        # variable shrinks every other's (calibrating up chases its own tail); DP noise makes
        # synthetic values too variable, not too smooth
        step = np.clip(0.5 * spread_gap, -MAX_SPREAD_STEP, 0.0) * weight
        log_sigma += _as(step, mask_bias).unsqueeze(1)
    return gaps


def _lag1_and_spread(x: np.ndarray, m: np.ndarray, idx: list[int]) -> tuple[np.ndarray, ...]:
    """Lag-1 autocorrelation and spread ``[V]`` of sampled stays (numeric variables ``idx``), as
    the release computes them: with its per-patient clipping (which weights patients, so the two
    sides must share it)."""
    sums = lag1_sums(x[..., idx].astype(np.float64), m[..., idx])
    rows = clip_rows(sums.reshape(len(x), -1), LAG_CLIP).reshape(sums.shape)
    lag1, spread = np.full(x.shape[2], np.nan), np.full(x.shape[2], np.nan)
    total = rows.sum(axis=0)
    lag1[idx] = lag1_from_sums(total)
    spread[idx] = (total[:, 1] + total[:, 2]) / 2 / len(x)
    return lag1, spread


def _as(step: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(step, dtype=like.dtype, device=like.device)
