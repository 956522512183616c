"""A stay's overall severity: a hidden field the series is generated from.

Why: in a real ICU cohort a sick patient is abnormal on many variables at once — low GCS, high
BUN and lactate, low bicarbonate go together — and that shared severity is what predicts death
(on PhysioNet 2012 the score below alone has AUROC 0.74 for in-hospital death). A series model
that draws each variable's level on its own given the statics loses it: its synthetic stays
had pairwise correlations of abnormality near 0 (real 0.08) and a score with AUROC 0.56.

So every stay gets a score computed by a public formula from its own values — the mean, over the
numeric variables it has, of how far the stay's values lie outside the schema's normal range
(in half-widths, each value clipped at ``OUTSIDE_CLIP``) — binned on public edges. The model
learns its distribution given the statics (one more autoregressive field head, under DP-SGD),
and the series given statics and score; sampling draws the score first, then the series. The
outcome model reads the score of the stay actually drawn. The score is never exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from clinsynth.generator.dp import gaussian_sum

if TYPE_CHECKING:  # both import this module
    from clinsynth.generator.encoding import Encoding
    from clinsynth.generator.model import StayModel

NAME = "__severity__"  # not a schema field: never decoded or written
OUTSIDE_CLIP = 4.0  # a value counts at most 4 half-widths outside its normal range
CENTRE, HALF = 0.5, 0.25  # the score enters the networks as (score - CENTRE) / HALF
EDGES = np.linspace(-2.0, 6.0, 17)  # 16 bins: scores 0 to 2 in steps of 0.125 (beyond: the ends)


def score(x: np.ndarray, m: np.ndarray, numeric: list[int]) -> np.ndarray:
    """``[N]`` standardised severity of stays ``x, m [N, T, V]`` (model space; NaN when a stay
    has no numeric value)."""
    xs, ms = x[..., numeric].astype(np.float64), m[..., numeric] > 0
    outside = np.where(ms, np.clip(np.abs(xs) - 1.0, 0.0, OUTSIDE_CLIP), 0.0)
    count = ms.sum(axis=1)
    has = count > 0
    per_variable = outside.sum(axis=1) / np.maximum(count, 1)
    raw = np.where(has, per_variable, 0.0).sum(axis=1) / has.sum(axis=1).clip(min=1)
    return np.where(has.any(axis=1), (raw - CENTRE) / HALF, np.nan)


# ---------------------------------------------------------------- how severity moves each variable
# DP-SGD does not learn this: the statics' weights into the value outputs stayed at the size of
# their noise (a model trained at ε = 4 drew series whose score had correlation 0.03 with the
# score they were drawn for). As with the prior release, the few numbers that carry it — one
# slope per variable — are cheap to release directly and set as the starting weights.
SCORE_CLIP = 4.0  # the score enters the release clipped to ±4 (standardised) and scaled to ±1
LEVEL_CLIP = 8.0  # a stay's mean value enters clipped to ±8 standardised units, scaled to ±1
PRODUCT_WEIGHT = 3.0  # the score × level products carry the slopes: they get more of the norm
SQUARE_WEIGHT = 4.0  # so does the squared score (its variance is every slope's denominator)
CLIP = 2.0  # l2 bound of one patient's vector (median norm ~1.3 on PhysioNet; binds for the sick)
SIGMA_AT_EPS4 = 4.0  # noise multiplier at ε = 4, scaled as 4/ε (public): DP-SGD's 2.87 → 3.06
MIN_STAYS = 50.0  # no slope for a variable fewer stays have


def release_sigma(epsilon: float) -> float:
    """Noise multiplier of the release for a total budget ε (fixed relative to ε)."""
    return SIGMA_AT_EPS4 * 4.0 / epsilon


@dataclass
class Effects:
    """Noisy sums of the severity release (one Gaussian mechanism) and their noise sd."""

    products: np.ndarray  # [V] Σ PRODUCT_WEIGHT · s · u_v   (s, u: clipped and scaled)
    levels: np.ndarray  # [V] Σ u_v
    scores: np.ndarray  # [V] Σ s over the stays that have variable v
    score: float  # Σ s
    score_sq: float  # Σ SQUARE_WEIGHT · s²
    n: int
    noise_sd: float


def release_effects(
    x: np.ndarray,
    m: np.ndarray,
    scores: np.ndarray,
    numeric: list[int],
    gen: torch.Generator,
    sigma: float,
) -> Effects:
    """Per patient: score × stay-mean level, the level, and the score where measured, of each
    numeric variable (0 where not measured); the score and its square; clipped to :data:`CLIP`,
    summed, noised once."""
    n, v = m.shape[0], m.shape[2]
    s = np.clip(np.nan_to_num(scores), -SCORE_CLIP, SCORE_CLIP) / SCORE_CLIP
    count = m.sum(axis=1)
    level = np.where(count > 0, (x * m).sum(axis=1) / np.maximum(count, 1), 0.0)
    u = np.zeros((n, v))
    u[:, numeric] = np.clip(level[:, numeric], -LEVEL_CLIP, LEVEL_CLIP) / LEVEL_CLIP
    has = np.zeros((n, v))
    has[:, numeric] = count[:, numeric] > 0
    rows = [PRODUCT_WEIGHT * s[:, None] * u, u, s[:, None] * has, s[:, None]]
    rows.append(SQUARE_WEIGHT * s[:, None] ** 2)
    total = gaussian_sum(np.concatenate(rows, axis=1), CLIP, sigma, gen)
    products, levels, scores = total[:v], total[v : 2 * v], total[2 * v : 3 * v]
    return Effects(products, levels, scores, total[3 * v], total[3 * v + 1], n, sigma * CLIP)


def slopes(effects: Effects, measured: np.ndarray) -> np.ndarray:
    """``[V]`` change of each variable's stay level (its standardised units) per unit of the
    standardised score, by least squares over the stays that have the variable (``measured``:
    the released count of such stays). Each slope is shrunk towards 0 by its noise (from
    the release's noise sd); all are 0 when the score's variance itself is too noisy."""
    n, sd = effects.n, effects.noise_sd
    mean_s = effects.score / n
    var_s = effects.score_sq / SQUARE_WEIGHT / n - mean_s**2  # over all stays (less noisy)
    if var_s <= 3.0 * sd / SQUARE_WEIGHT / n:
        return np.zeros_like(effects.products)
    counts = np.maximum(measured, 1.0)
    mean_s_v = effects.scores / counts  # stays with a rare lab are sicker than the average
    mean_u_v = effects.levels / counts
    cov = effects.products / PRODUCT_WEIGHT / counts - mean_s_v * mean_u_v
    cov_sd = sd / counts * np.sqrt(1.0 / PRODUCT_WEIGHT**2 + mean_s_v**2 + mean_u_v**2)
    units = LEVEL_CLIP / SCORE_CLIP / var_s
    beta, beta_sd = cov * units, cov_sd * units
    shrink = np.clip(1.0 - (2.0 * beta_sd) ** 2 / np.maximum(beta**2, 1e-12), 0.0, 1.0)
    return np.where(measured > MIN_STAYS, beta * shrink, 0.0)


@torch.no_grad()
def initialise(
    model: StayModel,
    encoding: Encoding,
    effects: Effects,
    measured: np.ndarray,
    rates: np.ndarray,
) -> None:
    """Start the score's head at the released class ``rates``, and each numeric variable's
    value target moving with the score by its released slope (the weight from the score's
    conditioning input), centred so the average stay is unchanged. Runs after the prior
    release's initialisation; ``measured``: its counts of stays that have each variable."""
    head = model.fields.heads[encoding.severity_index][-1]
    head.bias.copy_(torch.as_tensor(np.log(rates), dtype=head.bias.dtype))
    beta = slopes(effects, measured)
    k, p = model.config.n_mix, model.n_params
    column = encoding.cond_offsets()[encoding.severity_index]  # (score / 3, missing)
    mean_score = effects.score / effects.n * SCORE_CLIP
    bias = model.value_head.bias.view(model.n_vars, p)
    weight = model.value_cond.weight.view(model.n_vars, p, -1)
    for v in encoding.indices("gauss"):
        weight[v, k : 2 * k, column] = 3.0 * float(beta[v])
        bias[v, k : 2 * k] -= float(beta[v]) * mean_score
