"""What the model sees at grid step t: a summary of the stay *before* t (strictly causal).

The same :class:`History` object builds the training inputs (teacher forcing over the real grid)
and the sampling inputs (over the synthetic grid as it is drawn), so both paths see identical
features by construction.

Per variable: last observed value (LOCF, standardised), mean of its values so far (the level a
noisy vital reverts to), whether it was measured at t-1, whether it was ever measured, time since
it was last measured (log-scaled), and the share of past steps it was measured in (the patient's
own measurement intensity). Global: t/T, time since anything was measured (a stay that ended
stops producing rows), share of variables measured at t-1.
"""

from __future__ import annotations

import math

import torch

PER_VARIABLE = 6
LOCF, LEVEL = 0, 1  # positions of the value features in the per-variable block
GLOBAL = 3


class History:
    """Running state of a batch of stays on the grid; ``features()`` then ``update(x_t, m_t)``."""

    def __init__(
        self, batch: int, value_scale: torch.Tensor, value_shift: torch.Tensor, n_steps: int
    ):
        n_vars = value_scale.shape[0]
        self.scale, self.shift = value_scale, value_shift
        self.n_steps = n_steps
        self.norm = math.log1p(n_steps)
        self.t = 0
        dev = value_scale.device
        self.locf = torch.zeros(batch, n_vars, device=dev)
        self.total = torch.zeros(batch, n_vars, device=dev)
        self.count = torch.zeros(batch, n_vars, device=dev)
        self.last = torch.zeros(batch, n_vars, device=dev)
        self.ever = torch.zeros(batch, n_vars, device=dev)
        self.prev = torch.zeros(batch, n_vars, device=dev)
        self.last_any = torch.full((batch,), -1.0, device=dev)

    def input_values(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space value → network input (binary ±1, categorical index spread over ±1)."""
        return x * self.scale + self.shift

    def features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-variable ``[B, V, 6]``, global ``[B, 3]``) for the current step."""
        gap = torch.log1p(self.t - self.last) / self.norm
        gap = torch.where(self.ever > 0, gap, torch.ones_like(gap))
        level = self.total / self.count.clamp(min=1.0)
        share = self.count / max(self.t, 1)
        per_var = torch.stack([self.locf, level, self.prev, self.ever, gap, share], dim=-1)
        gap_any = torch.where(
            self.last_any >= 0,
            torch.log1p(self.t - self.last_any) / self.norm,
            torch.ones_like(self.last_any),
        )
        t_frac = torch.full_like(gap_any, self.t / self.n_steps)
        glob = torch.stack([t_frac, gap_any, self.prev.mean(dim=-1)], dim=-1)
        return per_var, glob

    def update(self, x: torch.Tensor, m: torch.Tensor) -> None:
        """Record step t's values ``x`` (model space) where ``m`` is 1; advance to t+1."""
        seen = m > 0
        value = self.input_values(x)
        self.locf = torch.where(seen, value, self.locf)
        self.total = self.total + torch.where(seen, value, torch.zeros_like(value))
        self.count = self.count + m
        self.last = torch.where(seen, torch.full_like(self.last, float(self.t)), self.last)
        self.ever = torch.maximum(self.ever, m)
        self.prev = m
        self.last_any = torch.where(seen.any(dim=-1), float(self.t), self.last_any)
        self.t += 1


def teacher_forced_features(
    x: torch.Tensor, m: torch.Tensor, value_scale: torch.Tensor, value_shift: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features for every step of real stays ``x, m [N, T, V]``: ``[N, T, V, 6]``, ``[N, T, 3]``."""
    n, t_steps, _ = x.shape
    hist = History(n, value_scale, value_shift, t_steps)
    per_var, glob = [], []
    for t in range(t_steps):
        pv, g = hist.features()
        per_var.append(pv)
        glob.append(g)
        hist.update(x[:, t], m[:, t])
    return torch.stack(per_var, dim=1), torch.stack(glob, dim=1)
