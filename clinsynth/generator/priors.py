"""A small DP release of summary statistics that initialises the model before DP-SGD.

DP-SGD spreads each patient's (clipped) gradient over ~10^5 weights and adds the same noise to
every one of them, so a quantity carried by one or two weights — the share of patients whose
heart rate is charted in the first hour, how often a lab is re-measured, the mortality rate —
gets a tiny signal-to-noise ratio per step, and a few hundred steps of Adam cannot move it far.
The same quantities are cheap to release directly: each patient contributes one short vector
(below), clipped to l2 norm ``CLIP``; the vectors are summed and Gaussian noise of standard
deviation ``SIGMA * CLIP`` is added once. This is a Gaussian mechanism — a DP-SGD step with
sampling rate 1 — so the accountant composes it with the training steps exactly (the training
noise is then solved for the remaining budget: about 3% more noise for SIGMA = 4).

The released sums initialise, per variable, a four-state measurement hazard (first hour; not yet
measured; measured at the previous step; measured before but not at the previous step) and the
mean of a variable's first value; per outcome, its class rates; per static, its missing rate.
DP-SGD then learns everything else (and refines these). Nothing else about the data is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from clinsynth.generator.encoding import Encoding
from clinsynth.generator.features import EVER, FIRST, PREV, SHARE
from clinsynth.generator.model import StayModel

SIGMA = 4.0  # noise multiplier of the release (public)
CLIP = 6.0  # l2 bound of one patient's vector (public; typical norms are 3-5)
FIRST_VALUE_CLIP = 4.0  # first values enter clipped to ±4 standardised units
MIN_COUNT = 30.0  # a released ratio whose denominator is below this is not used
N_MASK_STATS = 7  # per variable: m0, never (exposure, events), prev1 (..), seen-before (..)


@dataclass
class Released:
    """Noisy sums (one Gaussian mechanism) and what they are sums of."""

    mask: np.ndarray  # [V, 7]
    first_value: np.ndarray  # [V] sum of clipped first values (scaled)
    outcomes: list[np.ndarray]  # per outcome field: class counts
    static_missing: np.ndarray  # [n_static]
    n: int


def patient_vectors(
    x: np.ndarray, m: np.ndarray, codes: np.ndarray, encoding: Encoding
) -> np.ndarray:
    """One row per patient: the quantities whose sums are released (before clipping)."""
    n, t_len, _ = m.shape
    seen = m > 0
    ever_before = np.zeros_like(seen)
    ever_before[:, 1:] = np.logical_or.accumulate(seen, axis=1)[:, :-1]
    prev = np.zeros_like(seen)
    prev[:, 1:] = seen[:, :-1]
    later = np.zeros_like(seen)
    later[:, 1:] = True
    never = later & ~ever_before
    prev1 = later & prev
    before0 = later & ever_before & ~prev
    per_var = [
        seen[:, 0],
        never.sum(1) / t_len,
        (never & seen).sum(1),  # 0 or 1: the first measurement, when after the first hour
        prev1.sum(1) / t_len,
        (prev1 & seen).sum(1) / t_len,
        before0.sum(1) / t_len,
        (before0 & seen).sum(1) / t_len,
    ]
    mask_part = np.stack(per_var, axis=-1).astype(np.float64)  # [N, V, 7]
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

    ``sigma = 0`` gives the exact sums (only for training without DP).
    """
    rows = patient_vectors(x, m, codes, encoding)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    rows = rows * np.minimum(1.0, CLIP / np.maximum(norms, 1e-12))
    noise = torch.normal(0.0, max(sigma * CLIP, 1e-30), size=(rows.shape[1],), generator=gen)
    total = rows.sum(axis=0) + noise.double().numpy()
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
    return Released(mask, first, outcomes, static_missing, len(rows))


def _logit(num: float, den: float) -> float | None:
    """Log-odds of a released ratio; None when its (noisy) denominator is too small to trust."""
    if den < MIN_COUNT:
        return None
    p = min(max(num / den, 0.002), 0.998)
    return math.log(p / (1 - p))


@torch.no_grad()
def initialise(model: StayModel, released: Released, encoding: Encoding) -> None:
    """Set the biases and per-variable weights the released statistics determine."""
    n, k = released.n, model.config.n_mix
    for v in range(encoding.n_variables):
        m0, c_nev, d_nev, c_p1, d_p1, c_e0, d_e0 = released.mask[v]
        t_len = encoding.n_steps  # exposures and events after the first hour were sent / T
        l0 = _logit(m0, n)
        l_nev = _logit(d_nev, c_nev * t_len)
        l_p1 = _logit(d_p1 * t_len, c_p1 * t_len)
        l_e0 = _logit(d_e0 * t_len, c_e0 * t_len)
        w = model.mask_local.weight[v, 0]
        w[SHARE] = 0.0  # the four-state hazard replaces the generic prior
        if l_nev is not None:
            model.mask_head.bias[v] = l_nev
            if l0 is not None:
                w[FIRST] = l0 - l_nev
            if l_e0 is not None:
                w[EVER] = l_e0 - l_nev
        if l_e0 is not None and l_p1 is not None:
            w[PREV] = l_p1 - l_e0
        has = m0 + d_nev
        if has >= MIN_COUNT and encoding.variables[v].kind == "gauss":
            mean = float(np.clip(released.first_value[v] / has, -1, 1)) * FIRST_VALUE_CLIP
            spread = torch.linspace(-0.5, 0.5, k) if k > 1 else torch.zeros(1)
            model.value_head.bias.view(model.n_vars, model.n_params)[v, k : 2 * k] = mean + spread
    for j, counts in enumerate(released.outcomes):
        probs = np.clip(counts, 0.5, None) / np.clip(counts, 0.5, None).sum()
        head = model.fields.heads[encoding.n_static + j]
        head.bias.copy_(torch.as_tensor(np.log(probs), dtype=head.bias.dtype))
    for j, missing in enumerate(released.static_missing):
        p = float(np.clip(missing / n, 0.002, 0.998))
        f = encoding.statics[j]
        last = model.fields.heads[j][-1]
        # the other classes share 1 - p evenly at first; the MLP learns their shape
        last.bias.fill_(math.log((1 - p) / (f.n_classes - 1)))
        last.bias[f.missing_class] = math.log(p)
