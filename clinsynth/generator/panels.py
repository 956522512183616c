"""Schema panels measured as one event: the most-measured member decides, the others follow.

Why: one cuff inflation gives systolic, diastolic and mean pressure; one blood gas sample gives
pH, PaCO2 and PaO2. In real stays the members of a panel are charted in the same hour almost
always (PhysioNet 2012: all three cuff pressures in 98% of the hours with any of them, blood
gases 95%). Sharing one uniform between the members' own measurement decisions is not enough
once a model is trained: each member's mask head reads its own history and gets its own DP
noise and calibration steps, their probabilities drift apart from step to step, and a shared
uniform then co-measures them only as often as the smaller probability allows (ε = 4: 26% of
the cuff hours had all three, 38% of the blood gas hours). A cuff MAP drawn without the
pressures it lies between also loses its tie to them: it took its value from the network
alone, which followed itself too closely (lag-1 0.45 against 0.35 real).

So sampling lets one member decide: the panel's lead is the member with the highest released
measurement rate (a DP release: post-processing), measured by its own head as before; every
other member is measured in a step where the lead is, with probability its released rate over
the lead's (1 when equal), on one uniform per panel (so the less often ordered members come with
the more often ordered ones, as in real panels). Each member keeps its released rate, and
the panel its timing: who is measured how often, at which intervals, with which blood draws.
What a follower gives up is a pattern of its own: it is measured in a fixed share of its lead's
measurements, whoever the patient (SaO2 in 37% of the blood gases of every patient, where a
hospital may run co-oximetry for some patients only).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch


@dataclass(frozen=True)
class PanelPlan:
    """Per variable: the variable whose measurement decision it follows (itself for a lead or a
    variable in no panel), and its probability of being measured when that one is."""

    lead: tuple[int, ...]
    follow: tuple[float, ...]

    @cached_property  # read at every sampled step
    def followers(self) -> list[int]:
        return [v for v, lead in enumerate(self.lead) if lead != v]


def plan_if_any(panel_of: tuple[int, ...] | None, rates: np.ndarray | None) -> PanelPlan | None:
    """:func:`plan`, or None without panels (``panel_of`` None) or without released
    ``rates``: sampling then gives a panel's members one uniform, and calibration steps them
    all."""
    return None if panel_of is None or rates is None else plan(panel_of, rates)


def plan(panel_of: tuple[int, ...], rates: np.ndarray) -> PanelPlan:
    """The plan for variables grouped by ``panel_of`` (per variable, an id shared by one
    panel's members: ``Encoding.mask_source``) given their measurement ``rates``."""
    rates = np.nan_to_num(np.asarray(rates, dtype=np.float64), nan=0.0)  # unknown: never leads
    lead = list(range(len(panel_of)))
    follow = [1.0] * len(panel_of)
    for panel in sorted(set(panel_of)):
        members = [v for v, p in enumerate(panel_of) if p == panel]
        top = max(members, key=lambda v: (rates[v], -v))  # ties: the first in schema order
        for v in members:
            lead[v] = top
            if v != top:
                follow[v] = float(np.clip(rates[v] / max(rates[top], 1e-12), 0.0, 1.0))
    return PanelPlan(tuple(lead), tuple(follow))


def follow(m: torch.Tensor, plan: PanelPlan, u: torch.Tensor) -> torch.Tensor:
    """One step's mask ``m [B, V]`` with every follower measured where its lead is and the
    panel's uniform (``u [B, V]`` in the lead's column) falls below its follow probability.

    One uniform per panel nests the followers: a test ordered less often comes in the draws of
    those ordered more often (PhysioNet 2012: all of haematocrit, platelets and WBC in 62% of
    the hours with any, where independent draws give 47% and nested ones 64%; blood gases 95%,
    independent 90%, nested 95%)."""
    members = plan.followers
    if not members:
        return m
    out = m.clone()
    leads = [plan.lead[v] for v in members]
    share = torch.tensor([plan.follow[v] for v in members], dtype=m.dtype, device=m.device)
    out[:, members] = m[:, leads] * (u[:, leads] < share).to(m.dtype)
    return out
