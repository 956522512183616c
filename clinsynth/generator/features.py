"""What the model sees at grid step t: a summary of the stay *before* t (strictly causal).

The same :class:`History` object builds the training inputs (teacher forcing over the real grid)
and the sampling inputs (over the synthetic grid as it is drawn), so both paths see identical
features by construction.

Per variable: last observed value (LOCF, standardised), mean of its values so far (the level a
noisy vital reverts to), whether it was measured at t-1, whether it was ever measured, time since
it was last measured — or since admission when it never was — (log-scaled, plus one-hot buckets
so a per-variable linear model can learn a hazard peaking at a lab's usual interval), the share of
past steps it was measured in (the patient's own measurement intensity), a first-hour flag and
t/T. Global: t/T, time since anything was measured (a stay that ended stops producing rows),
share of variables measured at t-1.
"""

from __future__ import annotations

import math

import torch

GAP_EDGES = (2, 3, 5, 9, 17)  # gap (in steps) buckets [2], [3,4], [5,8], [9,16], [17,...)
CORE = 6  # features the shared network sees per variable (the local models see all)
N_TIME = 2  # first-step flag and t/T, repeated per variable for the local models
PER_VARIABLE = CORE + N_TIME + 2 * len(GAP_EDGES)
SEEN_BUCKETS = CORE + N_TIME  # first of the gap buckets after a measurement
NEVER_BUCKETS = SEEN_BUCKETS + len(GAP_EDGES)  # first of the buckets before any measurement


def gap_bucket(steps: torch.Tensor, i: int) -> torch.Tensor:
    """1.0 where ``steps`` falls in gap bucket i (``GAP_EDGES[i]`` up to the next edge)."""
    hi = GAP_EDGES[i + 1] if i + 1 < len(GAP_EDGES) else math.inf
    return ((steps >= GAP_EDGES[i]) & (steps < hi)).float()


LOCF, LEVEL, PREV, EVER, SHARE, FIRST = 0, 1, 2, 3, 5, 6  # positions in the per-variable block
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
        """(per-variable ``[B, V, PER_VARIABLE]``, global ``[B, 3]``) for the current step."""
        # steps since the last measurement, or since the stay began when there was none yet:
        # "unmeasured for 1 h" and "unmeasured for 20 h" are different situations
        steps = torch.where(
            self.ever > 0, self.t - self.last, torch.full_like(self.last, self.t + 1)
        )
        gap = torch.log1p(steps) / self.norm
        level = self.total / self.count.clamp(min=1.0)
        share = self.count / max(self.t, 1)
        buckets = [gap_bucket(steps, i) for i in range(len(GAP_EDGES))]
        # separately for "since the last measurement" and "since admission, none yet"
        buckets = [b * self.ever for b in buckets] + [b * (1 - self.ever) for b in buckets]
        first = torch.full_like(gap, float(self.t == 0))  # the admission hour is special
        t_frac = torch.full_like(gap, self.t / self.n_steps)
        per_var = torch.stack(
            [self.locf, level, self.prev, self.ever, gap, share, first, t_frac, *buckets], dim=-1
        )
        gap_any = torch.where(
            self.last_any >= 0,
            torch.log1p(self.t - self.last_any) / self.norm,
            torch.ones_like(self.last_any),
        )
        t_all = torch.full_like(gap_any, self.t / self.n_steps)
        glob = torch.stack([t_all, gap_any, self.prev.mean(dim=-1)], dim=-1)
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
    """Features for every step of real stays ``x, m [N, T, V]``: ``[N, T, V, F]``, ``[N, T, 3]``."""
    n, t_steps, _ = x.shape
    hist = History(n, value_scale, value_shift, t_steps)
    per_var, glob = [], []
    for t in range(t_steps):
        pv, g = hist.features()
        per_var.append(pv)
        glob.append(g)
        hist.update(x[:, t], m[:, t])
    return torch.stack(per_var, dim=1), torch.stack(glob, dim=1)


SUMMARY_CLIP = 3.0  # summaries see values clipped to ±3 standardised units, scaled to ±1
SUMMARY_SCALE = 1.0 / 3.0  # keeps the whole summary vector's norm around 2


def stay_summary(
    x: torch.Tensor, m: torch.Tensor, value_scale: torch.Tensor, value_shift: torch.Tensor
) -> torch.Tensor:
    """Whole-stay summary ``[N, V * 5]`` the outcome heads condition on.

    Per variable: mean, minimum, maximum and last of its measured values (network-input space,
    clipped to ±3 and scaled to ±1; 0 when never measured) and the share of steps measured.
    Outcomes are generated after the series, from this summary, so a synthetic death "explains"
    the synthetic stay the way a real one does.
    """
    u = ((x * value_scale + value_shift).clamp(-SUMMARY_CLIP, SUMMARY_CLIP)) / SUMMARY_CLIP
    seen = m > 0
    count = m.sum(dim=1)
    ever = count > 0
    mean = torch.where(seen, u, 0.0).sum(dim=1) / count.clamp(min=1.0)
    low = torch.where(seen, u, torch.inf).amin(dim=1)
    high = torch.where(seen, u, -torch.inf).amax(dim=1)
    steps = torch.arange(x.shape[1], device=x.device).view(1, -1, 1)
    last_idx = torch.where(seen, steps, -1).amax(dim=1).clamp(min=0)
    last = torch.gather(u, 1, last_idx.unsqueeze(1)).squeeze(1)
    parts = [mean, torch.where(ever, low, 0.0), torch.where(ever, high, 0.0)]
    parts += [torch.where(ever, last, 0.0), count / x.shape[1]]
    return torch.cat(parts, dim=-1) * SUMMARY_SCALE


SUMMARY_PER_VARIABLE = 5
