"""Cohorts built to pass or fail the audits (shared by tests/test_audits*.py and benchmarks).

Every case derives a "synthetic" cohort from real-like data with a known defect, re-keyed to
fresh IDs so nothing is trivially matched by ID.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clinsynth.cohort import Cohort
from clinsynth.simulate import simulate_cohort


def rekey(cohort: Cohort, prefix: str = "S") -> Cohort:
    """Same content under fresh synthetic IDs."""
    mapping = {p: f"{prefix}{i:05d}" for i, p in enumerate(cohort.patient_ids)}
    statics = cohort.statics.rename(index=mapping)
    obs = cohort.observations.assign(patient_id=cohort.observations["patient_id"].map(mapping))
    return Cohort(cohort.schema, statics, obs)


def three_way(n_each: int, seed: int = 11) -> tuple[Cohort, Cohort, Cohort]:
    """Simulated (train, holdout, other real patients) of ``n_each`` patients each."""
    cohort = simulate_cohort(3 * n_each, seed)
    ids = np.array(cohort.patient_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    parts = [np.sort(ids[order[i * n_each : (i + 1) * n_each]]) for i in range(3)]
    return tuple(cohort.subset(p) for p in parts)  # type: ignore[return-value]


def copy_of(train: Cohort) -> Cohort:
    return rekey(train)


def with_noise(train: Cohort, relative: float = 0.01, seed: int = 0) -> Cohort:
    """Training records with small multiplicative noise on every measured value."""
    rng = np.random.default_rng(seed)
    obs = train.observations.copy()
    continuous = {v.name for v in train.schema.variables if v.type.value == "continuous"}
    cont = obs["variable"].isin(continuous)
    obs.loc[cont, "value"] *= 1 + rng.normal(0, relative, int(cont.sum()))
    limits = {v.name: v.hard_limits for v in train.schema.variables if v.hard_limits}
    lo = obs["variable"].map(lambda v: limits.get(v, (-np.inf, np.inf))[0])
    hi = obs["variable"].map(lambda v: limits.get(v, (-np.inf, np.inf))[1])
    obs["value"] = obs["value"].clip(lo, hi)
    return rekey(Cohort(train.schema, train.statics.copy(), obs))


def shuffled_time(cohort: Cohort, seed: int = 0) -> Cohort:
    """Each patient's each variable moved to randomly permuted grid steps (values kept)."""
    rng = np.random.default_rng(seed)
    step, n_steps = cohort.schema.grid.step_hours, cohort.schema.grid.n_steps
    obs = cohort.observations.copy()
    obs = obs[(obs["hours"] >= 0) & (obs["hours"] < n_steps * step)].copy()
    bins = np.floor(obs["hours"].to_numpy() / step).astype(int)
    offset = obs["hours"].to_numpy() - bins * step
    new_bins = np.empty_like(bins)
    for _, idx in obs.groupby(["patient_id", "variable"], sort=False).indices.items():
        perm = rng.permutation(n_steps)
        new_bins[idx] = perm[bins[idx]]
    obs["hours"] = new_bins * step + offset
    obs = obs.sort_values(["patient_id", "hours", "variable"], kind="stable")
    return rekey(Cohort(cohort.schema, cohort.statics.copy(), obs))


def beyond_limits(cohort: Cohort, fraction: float = 0.05, seed: int = 0) -> Cohort:
    """A fraction of continuous values pushed 50% beyond their upper hard limit."""
    rng = np.random.default_rng(seed)
    obs = cohort.observations.copy()
    limits = {
        v.name: v.hard_limits[1]
        for v in cohort.schema.variables
        if v.hard_limits and not v.is_numeric_code
    }
    eligible = obs["variable"].isin(limits).to_numpy()
    hit = eligible & (rng.random(len(obs)) < fraction)
    obs.loc[hit, "value"] = obs.loc[hit, "variable"].map(limits).to_numpy() * 1.5
    return rekey(Cohort(cohort.schema, cohort.statics.copy(), obs))


def shuffled_labels(cohort: Cohort, seed: int = 0) -> Cohort:
    """Outcomes permuted across patients: the stays no longer say who dies."""
    rng = np.random.default_rng(seed)
    statics = cohort.statics.copy()
    for name in cohort.schema.outcome_names:
        statics[name] = rng.permutation(statics[name].to_numpy())
    return rekey(Cohort(cohort.schema, statics, cohort.observations.copy()))


def independent_noise(cohort: Cohort, seed: int = 0) -> Cohort:
    """Every value drawn independently and uniformly in its variable's normal range."""
    rng = np.random.default_rng(seed)
    obs = cohort.observations.copy()
    for name, idx in obs.groupby("variable").indices.items():
        var = cohort.schema.variable(str(name))
        lo, hi = var.normal_range or var.hard_limits or (0.0, 1.0)
        if var.is_numeric_code:
            obs.iloc[idx, obs.columns.get_loc("value")] = rng.integers(0, 2, len(idx))
        else:
            obs.iloc[idx, obs.columns.get_loc("value")] = rng.uniform(lo, hi, len(idx))
    return rekey(Cohort(cohort.schema, cohort.statics.copy(), obs))


def frame_summary(result) -> pd.DataFrame:
    """Checks as a small frame (handy when a test fails)."""
    return pd.DataFrame([c.to_dict() for c in result.checks])[
        ["name", "value", "threshold", "passed", "required"]
    ]
