"""How long after a measurement a variable is measured again: released, and calibrated to.

Why: the measurement heads start from a public prior that a variable measured an hour ago is
likely measured again (right for hourly vitals) and DP-SGD leaves that shape nearly untouched for
rare labs. On PhysioNet 2012 (ε = 4) a synthetic sodium was re-measured the next hour 21% of the
time (real: 0.9%), so labs came in bursts at the right daily rate but with a median interval of
2 h instead of 7-8 h, and the temporal audit's interval checks failed for most labs.

The release: per patient and variable, the distribution of its intervals between consecutive
measurements over the buckets of the model's gap features (1 h, 2 h, 3-4, 5-8, 9-16, 17+ h), a
vector summing to 1 (or 0 without two measurements), so every patient weighs one per variable
whatever its measurement count; clipped to :data:`CLIP` in l2 and summed with Gaussian noise
(one more mechanism of the calibration family, composed by the same accountant). Calibration
turns target and sampled distributions into bucket-level hazards (the chance that an interval
ends in bucket b given it lasted that long) and moves the per-variable weight of each bucket's
gap feature by their log-odds difference, as :func:`calibration.calibrate` moves the rates.
"""

from __future__ import annotations

import numpy as np
import torch

from clinsynth.generator.dp import clip_rows, gaussian_sum
from clinsynth.generator.features import PREV, SEEN_BUCKETS

# interval buckets in steps: [1], [2], [3,4], [5,8], [9,16], [17,...) — the model's gap features
EDGES = (1, 2, 3, 5, 9, 17)
N_BUCKETS = len(EDGES)
FEATURES = (PREV, *(SEEN_BUCKETS + i for i in range(N_BUCKETS - 1)))  # bucket b's gap feature
CLIP = 5.0  # l2 bound of one patient's vector (public; ≤ sqrt(V) always; PhysioNet 2012 stays
# with ~12 frequently measured variables: ~4)
RELIABLE = 10.0  # a bucket's hazard is used if the intervals at risk are 10 noise sd above 0
MIN_SHARE = 1e-3  # bucket-level hazards are kept within [MIN_SHARE, 1 - MIN_SHARE]


def bucket_shares(m: np.ndarray) -> np.ndarray:
    """Per patient and variable, the share of its intervals in each bucket: ``[N, V, B]``."""
    n, t_steps, v = m.shape
    seen = m > 0.5
    counts = np.zeros((n, v, N_BUCKETS))
    last = np.full((n, v), -1)
    bucket_of = np.searchsorted(np.array(EDGES), np.arange(t_steps + 1), side="right") - 1
    rows, cols = np.indices((n, v))
    for t in range(t_steps):
        ends = seen[:, t] & (last >= 0)
        gap_bucket = bucket_of[np.where(ends, t - last, 0)]
        np.add.at(counts, (rows[ends], cols[ends], gap_bucket[ends]), 1.0)
        last = np.where(seen[:, t], t, last)
    total = counts.sum(axis=2, keepdims=True)
    return counts / np.maximum(total, 1.0)


def release(m: np.ndarray, gen: torch.Generator, sigma: float) -> tuple[np.ndarray, float]:
    """Released mean bucket shares per patient and variable ``[V, B]``, and their noise sd."""
    n, _, v = m.shape
    rows = bucket_shares(m).reshape(n, -1)
    sums = gaussian_sum(rows, CLIP, sigma, gen).reshape(v, N_BUCKETS)
    return np.clip(sums, 0.0, None) / n, sigma * CLIP / n


def sampled(m: np.ndarray) -> np.ndarray:
    """The same mean shares ``[V, B]`` for sampled stays, with the release's clipping."""
    n, _, v = m.shape
    rows = clip_rows(bucket_shares(m).reshape(n, -1), CLIP)
    return rows.mean(axis=0).reshape(v, N_BUCKETS)


def _at_risk(shares: np.ndarray) -> np.ndarray:
    """Mean share of intervals that reach each bucket but the last ``[V, B-1]``."""
    return np.cumsum(shares[:, ::-1], axis=1)[:, ::-1][:, :-1]


def hazards(shares: np.ndarray, floor: np.ndarray | float = MIN_SHARE) -> np.ndarray:
    """Bucket-level hazards ``[V, B-1]``: P(interval in bucket b | not in an earlier one),
    kept within [floor, 1 - floor]."""
    with np.errstate(invalid="ignore", divide="ignore"):
        h = shares[:, :-1] / _at_risk(shares)
    return np.clip(h, floor, 1 - floor)


def calibration_step(target: np.ndarray, noise_sd: float, got: np.ndarray) -> np.ndarray:
    """Log-odds change ``[V, B-1]`` of each bucket's hazard; 0 where the target's intervals at
    risk are fewer than :data:`RELIABLE` noise sd. Both hazards are floored at the target's
    noise (its sd over the intervals at risk): below it, a log-odds difference is noise, and
    the calibration would chase it."""
    at_risk = _at_risk(target)
    reliable = at_risk > max(RELIABLE * noise_sd, 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        floor = np.clip(noise_sd / at_risk, MIN_SHARE, 0.5)

    def logit(p: np.ndarray) -> np.ndarray:
        return np.log(p / (1 - p))

    step = logit(hazards(target, floor)) - logit(hazards(got, floor))
    return np.where(reliable & np.isfinite(step), step, 0.0)


def apply_step(weight: torch.Tensor, step: np.ndarray) -> None:
    """Add ``step [V, B-1]`` to the mask's per-variable weights of the gap features (the last
    bucket, 17 h and more, has no hazard of its own among completed intervals).

    The rate calibration's bias step moves these states too, and the next round's interval step
    moves them back: rates then settle through the first measurement and the longest gaps.
    (Taking the bias step out of the gap weights at once was tried: on an untrained model the
    rates then stalled 8 pp off, against 6 pp this way.)"""
    for b, feature in enumerate(FEATURES[:-1]):
        weight[:, 0, feature] += torch.as_tensor(
            step[:, b], dtype=weight.dtype, device=weight.device
        )
