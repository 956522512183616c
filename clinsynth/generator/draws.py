"""Blood draws: labs of different panels are measured in the same rounds, to a released degree.

Why: a nurse draws blood for the morning labs once, and the count, the chemistry and the liver
panel come back from that one draw. Panels (schema) make the variables of ONE panel measured
together; between panels the model's measurement decisions were independent, so a synthetic
patient's blood count and chemistry came at different hours (PhysioNet 2012, ε = 4: P(creatinine
measured | haematocrit measured) 0.75 real, ~0.1 synthetic), and the temporal audit's
co-measurement check failed for every lab.

How much the panels cluster into rounds differs between hospitals, so it is released, not
assumed: the rates release (module calibration) carries each patient's share of grid steps in
which any blood-drawn variable (schema group ``lab``) was measured — at no extra privacy cost,
one more entry of the same clipped vector. Sampling couples the blood-drawn variables' uniforms
through one normal factor per stay and step (a Gaussian copula with loading ``sqrt(rho)``;
each variable keeps its own probability, so its rate is unchanged), and calibration moves
``rho`` until sampled stays have the released share of steps with a draw: independent panels
give too many separate draws, ``rho`` near 1 one draw for everything.
"""

from __future__ import annotations

import numpy as np
import torch

MAX_COUPLING = 0.99  # keep a little independence: panels are also ordered on their own
GAIN = 0.5  # change of rho per unit relative excess of draw steps (the share moves by about
# half its value between rho = 0 and 1)


def draw_share(m: np.ndarray, blood: np.ndarray) -> np.ndarray:
    """Per patient, the share of grid steps with any blood-drawn variable measured: ``[N]``."""
    return (m[..., blood] > 0.5).any(axis=2).mean(axis=1)


def couple(u: torch.Tensor, blood: torch.Tensor, rho: float, gen: torch.Generator) -> torch.Tensor:
    """Uniforms ``u [B, V]`` with the blood-drawn columns tied by one factor per row."""
    if rho <= 0.0 or not bool(blood.any()):
        return u
    factor = torch.randn(u.shape[0], 1, generator=gen, device=u.device)
    z = torch.special.ndtri(u.clamp(1e-7, 1 - 1e-7))
    tied = torch.special.ndtr(np.sqrt(rho) * factor + np.sqrt(1.0 - rho) * z)
    return torch.where(blood, tied, u)


def calibration_step(rho: float, target: float, sampled: float, weight: float) -> float:
    """The next ``rho``: up when sampled stays have more steps with a draw than released."""
    step = GAIN * (sampled / max(target, 1e-9) - 1.0) * weight
    return float(np.clip(rho + step, 0.0, MAX_COUPLING))
