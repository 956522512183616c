"""Nearest-neighbour memorisation: does any synthetic record copy, or nearly copy, a real one?

The yardstick is new real patients: how close held-out patients sit to the training cohort
(holdout -> train) is what "not a copy" looks like, so synthetic -> train distances (DCR) and
nearest/second-nearest ratios (NNDR) are reported relative to it. Copies are looked for at two
grains: whole stays (all statics and grid values identical) and single-variable trajectories
(3+ measurements of one variable at the same steps with near-identical values), the latter
against the rate at which real held-out patients coincide with a training patient by chance.

``flagged_synthetic_ids`` (synthetic IDs only) are the records export must drop: exact copies,
records closer to a training patient than 99% of new real patients are, and records carrying a
copied trajectory.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from audits.policy import Parameters
from audits.result import FamilyOutput, Measurement
from audits.stats import proportion_allowance, rank_count_allowance
from clinsynth.grid import GridCohort
from clinsynth.schema import Schema

_DECIMALS = 4


def stay_keys(grid: GridCohort) -> np.ndarray:
    """A hashable key per stay: statics + every grid value (NaN kept distinct), rounded."""
    vals = np.round(grid.values.astype(np.float64), _DECIMALS).reshape(grid.n_patients, -1)
    stat = np.round(grid.statics.astype(np.float64), _DECIMALS)
    both = np.nan_to_num(np.hstack([stat, vals]), nan=-9.87654321e12)
    return np.array([row.tobytes() for row in both], dtype=object)


def exact_copies(train: GridCohort, synthetic: GridCohort) -> np.ndarray:
    """Boolean per synthetic stay: identical to some training stay."""
    known = set(stay_keys(train))
    return np.array([k in known for k in stay_keys(synthetic)], dtype=bool)


def trajectory_copies(
    train: np.ndarray, query: np.ndarray, tolerance: float, min_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """One variable (``[n, t]`` arrays, public-range units): which query rows copy a train row?

    Returns (informative, copied) booleans per query row. A query trajectory is informative with
    ``min_points``+ measurements and 2+ distinct values; it is a copy when some training
    trajectory is measured at exactly the same steps with every value within ``tolerance``.
    """
    q_mask = ~np.isnan(query)
    t_mask = ~np.isnan(train)
    q_count = q_mask.sum(axis=1)
    spread = np.nanmax(np.where(q_mask, query, -np.inf), axis=1) - np.nanmin(
        np.where(q_mask, query, np.inf), axis=1
    )
    informative = (q_count >= min_points) & (spread > 0)
    copied = np.zeros(len(query), dtype=bool)
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i in np.flatnonzero(t_mask.sum(axis=1) >= min_points):
        groups[np.packbits(t_mask[i]).tobytes()].append(i)
    by_mask: dict[bytes, list[int]] = defaultdict(list)
    for i in np.flatnonzero(informative):
        by_mask[np.packbits(q_mask[i]).tobytes()].append(i)
    for key, rows in by_mask.items():
        partners = groups.get(key)
        if not partners:
            continue
        cols = q_mask[rows[0]]
        a = query[np.ix_(rows, np.flatnonzero(cols))]
        b = train[np.ix_(partners, np.flatnonzero(cols))]
        for start in range(0, len(a), 256):  # Chebyshev distance, chunked to bound memory
            d = np.abs(a[start : start + 256, None, :] - b[None, :, :]).max(axis=2)
            copied[np.asarray(rows[start : start + 256])] = (d <= tolerance + 1e-9).any(axis=1)
    return informative, copied


def _trajectory_table(
    z_train: np.ndarray,
    z_holdout: np.ndarray,
    z_synth: np.ndarray,
    schema: Schema,
    variables: list[str],
    params: Parameters,
) -> tuple[pd.DataFrame, np.ndarray]:
    rows = []
    synth_flag = np.zeros(z_synth.shape[0], dtype=bool)
    for j, name in enumerate(variables):
        # tolerance is a fraction of the normal-range width, which is 2 in public-range units;
        # codes (binary/categorical) must match exactly
        tol = 0.0 if schema.variable(name).is_numeric_code else params.trajectory_tolerance * 2
        s_inf, s_copy = trajectory_copies(
            z_train[:, :, j], z_synth[:, :, j], tol, params.min_trajectory_points
        )
        h_inf, h_copy = trajectory_copies(
            z_train[:, :, j], z_holdout[:, :, j], tol, params.min_trajectory_points
        )
        synth_flag |= s_copy
        rows.append(
            {
                "variable": name,
                "synthetic_informative": int(s_inf.sum()),
                "synthetic_copies": int(s_copy.sum()),
                "holdout_informative": int(h_inf.sum()),
                "holdout_copies": int(h_copy.sum()),
            }
        )
    table = pd.DataFrame(rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["synthetic_rate"] = table["synthetic_copies"] / table["synthetic_informative"]
        table["holdout_rate"] = table["holdout_copies"] / table["holdout_informative"]
    table["excess"] = table["synthetic_rate"] - table["holdout_rate"].fillna(0.0)
    return table, synth_flag


def memorisation_audit(
    train_x: np.ndarray,
    holdout_x: np.ndarray,
    synth_x: np.ndarray,
    train_grid: GridCohort,
    synth_grid: GridCohort,
    z_train: np.ndarray,
    z_holdout: np.ndarray,
    z_synth: np.ndarray,
    schema: Schema,
    params: Parameters,
) -> FamilyOutput:
    """Distances are on filled stay features; copies on the grids (see module docstring)."""
    alpha = params.noise_alpha
    nn = NearestNeighbors(n_neighbors=2).fit(train_x)
    d_syn = nn.kneighbors(synth_x)[0]
    d_hold = nn.kneighbors(holdout_x)[0]
    dcr_syn, dcr_hold = d_syn[:, 0], d_hold[:, 0]

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else (math.nan if a == 0 else math.inf)

    with np.errstate(invalid="ignore", divide="ignore"):
        nndr_syn = np.where(d_syn[:, 1] > 0, d_syn[:, 0] / d_syn[:, 1], 0.0)
        nndr_hold = np.where(d_hold[:, 1] > 0, d_hold[:, 0] / d_hold[:, 1], 0.0)
    med = ratio(np.median(dcr_syn), np.median(dcr_hold))
    p05 = ratio(np.quantile(dcr_syn, 0.05), np.quantile(dcr_hold, 0.05))
    nndr = ratio(np.median(nndr_syn), np.median(nndr_hold))

    exact = exact_copies(train_grid, synth_grid)
    # the r-th smallest holdout DCR: fewer than a share q of new real patients are closer
    rank = max(1, math.floor(params.near_copy_quantile * len(dcr_hold)))
    cutoff = float(np.sort(dcr_hold)[rank - 1])
    near = (dcr_syn < cutoff) | exact
    traj_table, traj_flag = _trajectory_table(
        z_train, z_holdout, z_synth, schema, train_grid.variables, params
    )
    s_inf, s_cop = traj_table["synthetic_informative"].sum(), traj_table["synthetic_copies"].sum()
    h_inf, h_cop = traj_table["holdout_informative"].sum(), traj_table["holdout_copies"].sum()
    s_rate = s_cop / s_inf if s_inf else 0.0
    h_rate = h_cop / h_inf if h_inf else 0.0
    excess = s_rate - h_rate

    n_syn, n_hold = len(synth_x), len(holdout_x)
    q = params.near_copy_quantile
    out = FamilyOutput()
    out.measurements = [
        Measurement(
            "memorisation_dcr_median_ratio",
            med,
            f"median DCR synthetic->train {np.median(dcr_syn):.3f} vs holdout->train "
            f"{np.median(dcr_hold):.3f}",
        ),
        Measurement(
            "memorisation_dcr_p05_ratio",
            p05,
            f"5th percentile DCR synthetic->train {np.quantile(dcr_syn, 0.05):.3f} vs "
            f"holdout->train {np.quantile(dcr_hold, 0.05):.3f}",
        ),
        Measurement(
            "memorisation_nndr_ratio",
            nndr,
            f"median NNDR synthetic {np.median(nndr_syn):.3f} vs holdout "
            f"{np.median(nndr_hold):.3f}",
        ),
        Measurement(
            "memorisation_exact_copy_rate",
            float(exact.mean()),
            f"{int(exact.sum())} of {n_syn} synthetic stays identical to a training stay",
        ),
        Measurement(
            "memorisation_near_copy_rate",
            float(near.mean()),
            f"{int(near.sum())} of {n_syn} synthetic stays closer to a training patient than "
            f"{1 - q:.0%} of held-out patients are (DCR < {cutoff:.3f}); about {q:.0%} is "
            "expected of new real patients",
            noise=rank_count_allowance(n_syn, n_hold, rank, alpha),
        ),
        Measurement(
            "memorisation_trajectory_copy_excess",
            excess,
            f"{s_cop} of {s_inf} synthetic trajectories copy a training one ({s_rate:.2%}) vs "
            f"{h_cop} of {h_inf} held-out ones by chance ({h_rate:.2%})",
            noise=proportion_allowance(h_rate, s_inf, h_inf, alpha),
            applicable=bool(s_inf),
        ),
    ]
    flagged = exact | near | traj_flag
    out.flagged_synthetic_ids = sorted(str(p) for p in synth_grid.patient_ids[flagged])
    out.tables["trajectory_copies"] = traj_table
    out.plots["dcr_synthetic"] = dcr_syn
    out.plots["dcr_holdout"] = dcr_hold
    out.plots["dcr_cutoff"] = cutoff
    out.summary = {
        "dcr_synthetic_median": float(np.median(dcr_syn)),
        "dcr_holdout_median": float(np.median(dcr_hold)),
        "near_copy_cutoff": cutoff,
        "exact_copies": int(exact.sum()),
        "near_copies": int(near.sum()),
        "trajectory_copy_records": int(traj_flag.sum()),
        "flagged": int(flagged.sum()),
    }
    return out
