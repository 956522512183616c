"""Who gets measured how often: a DP release of how the statics and the severity score move
each variable's measurement intensity, and the calibration step that reproduces it.

Why: in a real ICU cohort how often a variable is charted depends on the patient. Sicker
patients get more blood gases and labs, and cardiac-surgery patients get arterial lines. On
PhysioNet 2012 the statics and the severity score explain 27% of the variance of a stay's log
measurement intensity for invasive blood pressure, 37-41% for blood gases and 10-20% for the
labs. A model trained under DP-SGD (ε = 4) kept each variable's overall rate and its burstiness
but lost all of this (R² 0.01-0.05). The weights from the conditioning inputs into the
measurement logits stay at their noise, as the value levels' did before module :mod:`effects`.
So the sampled stays had measurement patterns unrelated to who the patient was.

The release: per patient, the products ``(z - c) ⊗ q`` of its statics conditioning inputs ``z``
(:func:`effects.regression_inputs`, centred on the effects release's mean ``c``) with each
variable's clipped log intensity ``q`` (measurements against the expected count from the released
rates), clipped to l2 norm :data:`CLIP` and summed with Gaussian noise (a mechanism the
accountant composes with the rest). Their mean is, per input and variable, about the covariance
of the input with the intensity. :func:`calibrate_step` then moves the weights from the inputs
into the measurement logits until sampled stays reproduce it, by a ridge regression on the
sampled stays' own inputs. That is post-processing, and it sees the model's feedback through
its own history (a stay measured more so far is measured more next).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from clinsynth.generator.dp import clip_rows, gaussian_sum, release_epsilon, shrink_to_noise
from clinsynth.generator.effects import input_scale

if TYPE_CHECKING:
    from clinsynth.generator.encoding import Encoding
    from clinsynth.generator.model import StayModel

INTENSITY_CLIP = 2.0  # log intensity enters clipped to ±2 (e^2 ≈ 7 times the expected count)
CLIP = 6.0  # l2 bound of one patient's products (PhysioNet 2012: median 4.6, 90th pct. 6.8)
SIGMA_AT_EPS4 = 4.0  # noise multiplier at ε = 4, scaled as 4/ε (public)
RIDGE = 0.05  # on the sampled inputs' covariance (one-hot columns are collinear)
MIN_INPUT_SD = 0.05  # inputs that barely vary in the sampled stays get no step
GAIN = 2.0  # log-odds per unit of log-intensity gap: a shift of the measurement logit moves
# the intensity of bursty variables (often measured once they are measured at all) by less
MAX_STEP = 1.0  # no round moves one weight by more than this (log-odds per unit input)


def release_sigma(epsilon: float) -> float:
    """Noise multiplier of the release for a total budget ε (fixed relative to ε)."""
    return SIGMA_AT_EPS4 * 4.0 / release_epsilon(epsilon)


def log_intensity(m: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """``[N, V]`` each stay's log of (measurements + 1) / (expected + 1), the expected count from
    ``rates [V]`` over the grid, clipped to ±:data:`INTENSITY_CLIP` and scaled to ±1."""
    count = m.sum(axis=1)
    expected = m.shape[1] * np.asarray(rates, dtype=np.float64)
    q = np.log((count + 1.0) / (expected + 1.0))
    return np.clip(q, -INTENSITY_CLIP, INTENSITY_CLIP) / INTENSITY_CLIP


def products(z: np.ndarray, centre: np.ndarray, m: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """``[N, C * V]`` one row per stay: its centred inputs times its :func:`log_intensity`."""
    zc = z - centre
    q = log_intensity(m, rates)
    return (zc[:, :, None] * q[:, None, :]).reshape(len(z), -1)


def release(
    z: np.ndarray,
    m: np.ndarray,
    centre: np.ndarray,
    rates: np.ndarray,
    gen: torch.Generator,
    sigma: float,
) -> np.ndarray:
    """``[C, V]`` the released mean :func:`products` of real stays (inputs ``z [N, C]``, masks
    ``m [N, T, V]``), each entry shrunk towards 0 by its noise (``sigma = 0``: exact)."""
    n, c = z.shape
    total = gaussian_sum(products(z, centre, m, rates), CLIP, sigma, gen)
    return shrink_to_noise(total.reshape(c, -1) / n, sigma * CLIP / n)


def sampled(z: np.ndarray, m: np.ndarray, centre: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """``[C, V]`` the same mean for sampled stays, with the release's per-stay clipping."""
    rows = clip_rows(products(z, centre, m, rates), CLIP)
    return rows.mean(axis=0).reshape(z.shape[1], -1)


@torch.no_grad()
def calibrate_step(
    model: StayModel, encoding: Encoding, z: np.ndarray, gap: np.ndarray, weight: float
) -> None:
    """Move the weights from the conditioning inputs into the measurement logits by ``weight``
    times the regression of the ``gap [C, V]`` (target minus sampled mean products) on the
    sampled stays' inputs ``z [N, C]``; the logits' mean over those stays stays put."""
    used = z.std(axis=0) > MIN_INPUT_SD
    cov = np.cov(z[:, used], rowvar=False).reshape(int(used.sum()), -1)
    beta = np.zeros_like(gap)  # per unit of z, in log intensity (≈ log-odds for rare events)
    beta[used] = np.linalg.solve(cov + RIDGE * np.eye(len(cov)), gap[used]) * INTENSITY_CLIP
    step = np.clip(GAIN * beta * weight, -MAX_STEP, MAX_STEP)
    per_cond = step * input_scale(encoding)[:, None]  # z = cond * scale
    w = model.mask_cond.weight  # [V, width of cond]
    w[:, : per_cond.shape[0]] += torch.as_tensor(per_cond.T, dtype=w.dtype, device=w.device)
    shift = z.mean(axis=0) @ step  # [V]
    model.mask_head.bias -= torch.as_tensor(shift, dtype=w.dtype, device=w.device)
