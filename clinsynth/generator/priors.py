"""A small DP release of summary statistics that initialises the model before DP-SGD.

DP-SGD spreads each patient's (clipped) gradient over ~10^5 weights and adds the same noise to
every one of them, so a quantity carried by one or two weights — the share of patients whose
heart rate is charted in the first hour, how often a lab is re-measured, the mortality rate —
gets a tiny signal-to-noise ratio per step, and a few hundred steps of Adam cannot move it far.
The same quantities are cheap to release directly: each patient contributes one short vector
(below), clipped to l2 norm ``CLIP``; the vectors are summed and Gaussian noise of standard
deviation ``sigma * CLIP`` is added once (``sigma = 16 / ε``). This is a Gaussian mechanism — a
DP-SGD step with sampling rate 1 — so the accountant composes it with the training steps exactly
(the training noise is then solved for the remaining budget: about 3% more noise at ε = 4).

The released sums initialise, per variable, a measurement hazard by state (first hour; not yet
measured, by time since admission; measured at the previous step; measured before but not at
the previous step, by time since that measurement) and the mean of a variable's first value;
per outcome, its class rates; per static, its missing rate.
DP-SGD then learns everything else (and refines these). Nothing else about the data is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from clinsynth.generator.dp import gaussian_sum, release_epsilon
from clinsynth.generator.encoding import Encoding
from clinsynth.generator.features import (
    EVER,
    FIRST,
    GAP_EDGES,
    NEVER_BUCKETS,
    PREV,
    SEEN_BUCKETS,
    SHARE,
    gap_bucket,
)
from clinsynth.generator.model import StayModel

SIGMA_AT_EPS4 = 4.0  # noise multiplier of the release at ε = 4, scaled as 4/ε (public)


def release_sigma(epsilon: float) -> float:
    """Noise multiplier of the release for a total budget ε: the release alone then costs
    about a fifth of ε (0.83 of 4 at δ = 5e-5); above ε = 4 it stays at that precision."""
    return SIGMA_AT_EPS4 * 4.0 / release_epsilon(epsilon)


SIGMA = SIGMA_AT_EPS4  # the default budget's (used where no ε is at hand)
CLIP = 8.0  # l2 bound of one patient's vector (public; a stay's vector has norm ~7-8.5, and
# clipping would shrink the sums: it should bind rarely)
FIRST_VALUE_CLIP = 4.0  # first values enter clipped to ±4 standardised units
MIN_COUNT = 30.0  # a released ratio whose denominator is below this is not used ...
SHRINK = 2.0  # a fine state's estimate gets weight den / (den + 2 noise sd) vs its parent's
N_B = len(GAP_EDGES)
# per variable: m0; not-yet-measured (exposure, events) per bucket; after a measurement at t-1
# (exposure, events); measured earlier (exposure, events) per bucket
N_MASK_STATS = 1 + 2 * N_B + 2 + 2 * N_B


@dataclass
class Released:
    """Noisy sums (one Gaussian mechanism) and what they are sums of."""

    mask: np.ndarray  # [V, 7]
    first_value: np.ndarray  # [V] sum of clipped first values (scaled)
    outcomes: list[np.ndarray]  # per outcome field: class counts
    static_missing: np.ndarray  # [n_static]
    n: int
    noise_sd: float  # standard deviation of the noise on every sum (0: exact, no DP)


def patient_vectors(
    x: np.ndarray, m: np.ndarray, codes: np.ndarray, encoding: Encoding
) -> np.ndarray:
    """One row per patient: the quantities whose sums are released (before clipping)."""
    n, t_len, _ = m.shape
    seen = m > 0
    steps_idx = np.arange(t_len).reshape(1, -1, 1)
    last = np.where(seen, steps_idx, -1)
    last = np.maximum.accumulate(last, axis=1)
    last_before = np.full_like(last, -1)
    last_before[:, 1:] = last[:, :-1]
    ever_before = last_before >= 0
    gap = np.where(ever_before, steps_idx - last_before, steps_idx + 1)  # as features.History
    later = np.broadcast_to(steps_idx > 0, seen.shape)
    never = later & ~ever_before
    prev1 = later & ever_before & (gap == 1)
    before0 = later & ever_before & (gap > 1)
    buckets = [gap_bucket(torch.from_numpy(gap), i).numpy() > 0 for i in range(N_B)]
    per_var = [seen[:, 0].astype(np.float64)]
    for b in buckets:  # events: each patient has at most one first measurement
        per_var += [(never & b).sum(1) / t_len, (never & b & seen).sum(1)]
    per_var += [prev1.sum(1) / t_len, (prev1 & seen).sum(1) / t_len]
    for b in buckets:
        per_var += [(before0 & b).sum(1) / t_len, (before0 & b & seen).sum(1) / t_len]
    mask_part = np.stack(per_var, axis=-1).astype(np.float64)  # [N, V, N_MASK_STATS]
    first_idx = seen.argmax(axis=1)
    first = np.take_along_axis(x, first_idx[:, None, :], axis=1)[:, 0, :]
    has = seen.any(axis=1)
    first = np.where(has, np.clip(first, -FIRST_VALUE_CLIP, FIRST_VALUE_CLIP), 0.0)
    first /= FIRST_VALUE_CLIP
    parts = [mask_part.reshape(n, -1), first]
    for k, f in enumerate(encoding.statics):
        if k >= encoding.n_static:
            parts.append(np.eye(f.n_classes)[codes[:, k]])
    missing = [codes[:, k] == f.missing_class for k, f in enumerate(encoding.statics)]
    parts.append(np.stack(missing[: encoding.n_static], axis=1).astype(np.float64))
    return np.concatenate(parts, axis=1)


def release(
    x: np.ndarray,
    m: np.ndarray,
    codes: np.ndarray,
    encoding: Encoding,
    gen: torch.Generator,
    sigma: float = SIGMA,
) -> Released:
    """Clip, sum, add Gaussian noise once (the privacy cost is accounted by the caller).

    The noise standard deviation is ``sigma * CLIP``, which :func:`initialise` must be told.

    ``sigma = 0`` gives the exact sums (only for training without DP).
    """
    rows = patient_vectors(x, m, codes, encoding)
    total = gaussian_sum(rows, CLIP, sigma, gen)
    v = encoding.n_variables
    pos = v * N_MASK_STATS
    mask, first = total[:pos].reshape(v, N_MASK_STATS), total[pos : pos + v]
    pos += v
    outcomes = []
    for k, f in enumerate(encoding.statics):
        if k >= encoding.n_static:
            outcomes.append(total[pos : pos + f.n_classes])
            pos += f.n_classes
    static_missing = total[pos : pos + encoding.n_static]
    return Released(mask, first, outcomes, static_missing, len(rows), noise_sd=sigma * CLIP)


def _logit(p: float) -> float:
    p = min(max(p, 0.002), 0.998)
    return math.log(p / (1 - p))


def _shrunk(num: float, den: float, noise: float, parent: float) -> float:
    """Log-odds of a released ratio, pulled towards its parent estimate when the (noisy)
    denominator is not well above its noise — so fine states with few observations inherit
    the pooled hazard instead of noise, and related variables are initialised alike."""
    if den <= 0:
        return parent
    weight = den / (den + SHRINK * noise) if noise > 0 else 1.0
    return parent + weight * (_logit(num / den) - parent)


def measured_counts(released: Released) -> np.ndarray:
    """``[V]`` noisy count of stays in which each variable is ever measured (first hour, or a
    first measurement later: each stay has at most one)."""
    return released.mask[:, 0] + released.mask[:, 2 : 2 + 2 * N_B : 2].sum(axis=1)


def first_value_means(released: Released, encoding: Encoding) -> np.ndarray:
    """``[V]`` released mean first value of each numeric variable (standardised units; 0, the
    middle of the normal range, where too few stays have the variable to tell)."""
    means = np.zeros(encoding.n_variables)
    threshold = max(MIN_COUNT, SHRINK * released.noise_sd)
    for v, has in enumerate(measured_counts(released)):
        if has >= threshold and encoding.variables[v].kind == "gauss":
            means[v] = float(np.clip(released.first_value[v] / has, -1, 1)) * FIRST_VALUE_CLIP
    return means


@torch.no_grad()
def initialise(model: StayModel, released: Released, encoding: Encoding) -> None:
    """Set the biases and per-variable weights the released statistics determine."""
    n, k = released.n, model.config.n_mix
    t_len = encoding.n_steps  # exposures (and later events) were sent divided by T
    sd = released.noise_sd
    sd_t = sd * t_len  # noise sd of an entry sent divided by T, in counts
    for v in range(encoding.n_variables):
        stats = released.mask[v]
        nev = stats[1 : 1 + 2 * N_B].reshape(N_B, 2) * [t_len, 1.0]
        p1 = stats[1 + 2 * N_B : 3 + 2 * N_B] * t_len
        e0 = stats[3 + 2 * N_B :].reshape(N_B, 2) * t_len
        exposure = nev[:, 0].sum() + p1[0] + e0[:, 0].sum()
        events = nev[:, 1].sum() + p1[1] + e0[:, 1].sum()
        if exposure < max(MIN_COUNT, SHRINK * sd_t):
            continue  # too little data: keep the generic prior
        pooled = _logit(events / exposure)
        pooled_sd = sd_t * math.sqrt(2 * N_B + 2)
        l_nev = _shrunk(nev[:, 1].sum(), nev[:, 0].sum(), pooled_sd, pooled)
        l_e0 = _shrunk(e0[:, 1].sum(), e0[:, 0].sum(), pooled_sd, pooled)
        l_p1 = _shrunk(p1[1], p1[0], sd_t, pooled)
        l0 = _shrunk(stats[0], n, sd, l_nev)
        w = model.mask_local.weight[v, 0]
        model.mask_head.bias[v] = l_nev
        w[FIRST] = l0 - l_nev
        w[EVER] = l_e0 - l_nev
        for i in range(N_B):
            w[NEVER_BUCKETS + i] = _shrunk(nev[i, 1], nev[i, 0], sd_t, l_nev) - l_nev
            w[SEEN_BUCKETS + i] = _shrunk(e0[i, 1], e0[i, 0], sd_t, l_e0) - l_e0
        w[SHARE] = 0.0  # the state hazards replace the generic prior
        w[PREV] = l_p1 - l_e0
    first = first_value_means(released, encoding)
    spread = torch.linspace(-0.5, 0.5, k) if k > 1 else torch.zeros(1)
    for v in encoding.indices("gauss"):  # a variable too rare to tell starts at the centre
        model.value_head.bias.view(model.n_vars, model.n_params)[v, k : 2 * k] = first[v] + spread
    for j, counts in enumerate(released.outcomes):
        head = model.fields.heads[encoding.n_static + j]
        probs = np.clip(counts, 0.5, None) / np.clip(counts, 0.5, None).sum()
        head.bias.copy_(torch.as_tensor(np.log(probs), dtype=head.bias.dtype))
    for j, missing in enumerate(released.static_missing):
        if j == encoding.severity_index:
            continue  # set from the calibration release (module severity)
        p = float(np.clip(missing / n, 0.002, 0.998))
        f = encoding.statics[j]
        last = model.fields.heads[j][-1]
        # the other classes share 1 - p evenly at first; the MLP learns their shape
        last.bias.fill_(math.log((1 - p) / (f.n_classes - 1)))
        last.bias[f.missing_class] = math.log(p)
