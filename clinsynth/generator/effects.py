"""How the statics and the hidden severity score move each variable's level: a DP release.

Why: DP-SGD leaves the weights from the conditioning inputs into the value outputs at the size
of their noise. On PhysioNet 2012 (ε = 4) every static's correlation with a variable's stay
level was about 0 in synthetic stays: age with diastolic pressure -0.42 real, +0.01 synthetic;
age with BUN 0.34 vs 0.02; height with weight 0.43 vs -0.02; and a series drawn for a severity
score had a realised score correlated 0.03 with it. These few hundred numbers — one coefficient
per variable and conditioning input — are cheap to release directly and set as the starting
weights (DP-SGD then refines them).

The release: per patient, with ``z`` its statics conditioning vector (the public encoding of
:meth:`Encoding.static_condition`: binned numeric statics, binary, one-hot categorical, the
severity score, scaled publicly: :func:`input_scale`) and ``u_v`` its clipped stay-mean level of
each numeric variable about the prior release's mean (0 where the variable is not measured), the
products ``z ⊗ u``, the levels ``u``, the inputs where each
variable is measured ``z ⊗ has``, the inputs ``z`` and their products ``z zᵀ`` — clipped, summed
and noised once (a Gaussian mechanism the accountant composes with DP-SGD). Each variable's
coefficients are then a ridge regression of its level on ``z`` over the stays that have it
(their own mean of ``z``: a lab ordered for sick patients does not get an effect from who has it;
the covariance of ``z`` over all stays), each shrunk towards 0 by its noise. Post-processing only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from clinsynth.generator.dp import gaussian_sum, release_epsilon, shrink_to_noise
from clinsynth.generator.encoding import NUMERIC_COND_SCALE

if TYPE_CHECKING:
    from clinsynth.generator.encoding import Encoding
    from clinsynth.generator.model import StayModel

LEVEL_CLIP = 4.0  # a stay's mean value enters clipped to ±4 units about its centre, scaled to ±1
PRODUCT_WEIGHT = 1.0  # weights of the parts of a patient's vector (share of the clip norm)
WHERE_WEIGHT = 0.25  # z where each variable is measured: V copies of z, large counts behind them
MOMENT_WEIGHT = 0.5  # z and z zᵀ: the covariance must be precise for the regression
CLIP = 4.0  # l2 bound of one patient's vector (PhysioNet: median norm 4.1, so it binds for about
# half the stays and shrinks their part of every sum alike: the regression's ratios move little)
SIGMA_AT_EPS4 = 4.0  # noise multiplier at ε = 4, scaled as 4/ε (public)
MIN_STAYS = 50.0  # no coefficients for a variable fewer stays have
RIDGE = 0.05  # ridge on the covariance of z (one-hot columns are collinear with each other)
MIN_VARIANCE = 0.02  # an input whose released variance is below this is left out


def release_sigma(epsilon: float) -> float:
    """Noise multiplier of the release for a total budget ε (fixed relative to ε)."""
    return SIGMA_AT_EPS4 * 4.0 / release_epsilon(epsilon)


@dataclass
class Effects:
    """Noisy sums of the release (unweighted) and the noise sd of each, per kind of sum."""

    products: np.ndarray  # [C, V] Σ z_c · u_v
    levels: np.ndarray  # [V] Σ u_v
    inputs_where: np.ndarray  # [C, V] Σ z_c over the stays that have variable v
    inputs: np.ndarray  # [C] Σ z_c
    gram: np.ndarray  # [C, C] Σ z zᵀ
    n: int
    noise_sd: float  # of the weighted sums; divide by the weight for a kind of sum


def input_scale(encoding: Encoding) -> np.ndarray:
    """``[C]`` public scale of the statics conditioning columns for the regression: numeric
    values back in normal-range units (the conditioning vector carries them divided by
    :data:`NUMERIC_COND_SCALE`, which would leave age with a variance below the noise), and 0
    for every "missing" column (a flag rarely set costs norm and carries noise, not effects)."""
    scale = np.ones(encoding.static_cond_width)
    for off, f in zip(encoding.cond_offsets(), encoding.statics[: encoding.n_static], strict=False):
        if f.kind == "numeric":
            scale[off] = NUMERIC_COND_SCALE
        missing = off + (f.missing_class if f.kind == "categorical" else 1)
        scale[missing] = 0.0
    return scale


def regression_inputs(encoding: Encoding, cond: np.ndarray) -> np.ndarray:
    """``[N, C]`` the regression's inputs: the statics part of the conditioning vectors
    ``cond`` (:meth:`Encoding.static_condition`), scaled by :func:`input_scale`."""
    return cond[:, : encoding.static_cond_width] * input_scale(encoding)


def patient_rows(
    x: np.ndarray, m: np.ndarray, z: np.ndarray, numeric: list[int], centre: np.ndarray
) -> np.ndarray:
    """One row per patient (before clipping): the weighted quantities whose sums are released.
    Levels are taken about ``centre`` (an earlier DP release's mean of each variable), so the
    noise on who has a variable barely enters the regression."""
    n, c = z.shape
    count = m.sum(axis=1)
    level = (x * m).sum(axis=1) / np.maximum(count, 1) - centre
    level = np.where(count > 0, level, 0.0)
    u = np.clip(level[:, numeric], -LEVEL_CLIP, LEVEL_CLIP) / LEVEL_CLIP
    has = (count[:, numeric] > 0).astype(np.float64)
    upper = np.triu_indices(c)
    parts = [
        PRODUCT_WEIGHT * (z[:, :, None] * u[:, None, :]).reshape(n, -1),
        u,
        WHERE_WEIGHT * (z[:, :, None] * has[:, None, :]).reshape(n, -1),
        MOMENT_WEIGHT * z,
        MOMENT_WEIGHT * (z[:, :, None] * z[:, None, :])[:, upper[0], upper[1]],
    ]
    return np.concatenate(parts, axis=1)


def release_effects(
    x: np.ndarray,
    m: np.ndarray,
    z: np.ndarray,
    numeric: list[int],
    gen: torch.Generator,
    sigma: float,
    centre: np.ndarray | None = None,
) -> Effects:
    """The release, from model-space stays ``x, m [N, T, V]`` and their conditioning inputs
    ``z [N, C]``; sums are over the ``numeric`` variables (others get zeros); levels about
    ``centre [V]`` (default 0: the middle of the normal range)."""
    z = z.astype(np.float64)
    n, c = z.shape
    v, k = m.shape[2], len(numeric)
    centre = np.zeros(v) if centre is None else centre
    total = gaussian_sum(patient_rows(x, m, z, numeric, centre), CLIP, sigma, gen)
    products, levels, where, inputs, upper = np.split(total, np.cumsum([c * k, k, c * k, c]))
    out_products, out_where, out_levels = np.zeros((c, v)), np.zeros((c, v)), np.zeros(v)
    out_products[:, numeric] = products.reshape(c, k) / PRODUCT_WEIGHT
    out_where[:, numeric] = where.reshape(c, k) / WHERE_WEIGHT
    out_levels[numeric] = levels
    gram = np.zeros((c, c))
    gram[np.triu_indices(c)] = upper / MOMENT_WEIGHT
    gram = gram + np.triu(gram, 1).T
    return Effects(
        out_products, out_levels, out_where, inputs / MOMENT_WEIGHT, gram, n, sigma * CLIP
    )


def inputs_where_measured(effects: Effects, measured: np.ndarray) -> np.ndarray:
    """``[C, V]`` mean inputs over the stays that have each variable (``measured``: the released
    count of such stays): stays with a rare lab are different from the average one."""
    return effects.inputs_where / np.maximum(measured, 1.0)


def coefficients(effects: Effects, measured: np.ndarray) -> np.ndarray:
    """``[C, V]`` change of each variable's stay level (standardised units) per unit of each
    conditioning input, by ridge regression over the stays that have the variable
    (``measured``: the released count of such stays); each shrunk towards 0 by its noise."""
    n, sd = effects.n, effects.noise_sd
    mean_z = effects.inputs / n
    cov_z = effects.gram / n - np.outer(mean_z, mean_z)
    # inputs that (nearly) never vary carry nothing (a missing flag never set): left out, as
    # their noise would be amplified without bound
    used = np.diag(cov_z) > MIN_VARIANCE
    # plus twice the noise the covariance's eigenvalues carry (entry noise × √C), so the
    # noisy matrix stays well inside positive definite
    ridge = RIDGE + 2.0 * math.sqrt(len(mean_z)) * sd / MOMENT_WEIGHT / n
    inverse = np.zeros_like(cov_z)
    inverse[np.ix_(used, used)] = np.linalg.inv(
        cov_z[np.ix_(used, used)] + ridge * np.eye(int(used.sum()))
    )
    counts = np.maximum(measured, 1.0)
    mean_z_v = inputs_where_measured(effects, measured)
    mean_u_v = effects.levels / counts
    cov = effects.products / counts - mean_z_v * mean_u_v
    cov_sd = (sd / counts) * np.sqrt(
        1.0 / PRODUCT_WEIGHT**2 + (mean_u_v / WHERE_WEIGHT) ** 2 + mean_z_v**2
    )
    beta = inverse @ cov * LEVEL_CLIP
    beta_sd = np.sqrt((inverse**2) @ cov_sd**2) * LEVEL_CLIP
    return np.where(measured > MIN_STAYS, shrink_to_noise(beta, beta_sd), 0.0)


@torch.no_grad()
def initialise(
    model: StayModel, encoding: Encoding, effects: Effects, measured: np.ndarray
) -> None:
    """Each numeric variable's value target moves with the conditioning inputs by its released
    coefficients (the weights from ``cond`` into the target components), centred on the stays
    that have it so their average start is unchanged. Runs after the prior release's start."""
    beta = coefficients(effects, measured)  # per unit of the scaled inputs
    mean_z_v = inputs_where_measured(effects, measured)  # the regression's own centring
    scale = input_scale(encoding)
    k, p, c = model.config.n_mix, model.n_params, beta.shape[0]
    bias = model.value_head.bias.view(model.n_vars, p)
    weight = model.value_cond.weight.view(model.n_vars, p, -1)
    for v in encoding.indices("gauss"):
        b = torch.as_tensor(beta[:, v] * scale, dtype=weight.dtype)  # per unit of cond
        weight[v, k : 2 * k, :c] = b
        bias[v, k : 2 * k] -= float(beta[:, v] @ mean_z_v[:, v])
