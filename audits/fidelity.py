"""Overall marginal fidelity (time ignored) per variable and static, plus the report's figure data.

Kept apart from ``temporal`` on purpose: a cohort whose time steps were shuffled within patients
passes here and fails there, which tells the reader *what kind* of structure was lost.
Figure data is aggregate only: histograms, and for trajectories the real cohort's percentile
band per time step (never an individual real patient's series) beside a few synthetic patients.
"""

from __future__ import annotations

import math

import numpy as np

from audits.policy import Parameters
from audits.result import FamilyOutput
from audits.stats import ks_critical, ks_distance
from audits.verdicts import share_failing, verdict_frame, verdict_row
from clinsynth.grid import GridCohort
from clinsynth.schema import Schema, VariableType

HIST_BINS = 30
N_TRAJECTORY_VARIABLES = 6
N_TRAJECTORY_SAMPLES = 5


def _tvd(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        return math.nan
    cats = np.union1d(a, b)
    pa = np.array([(a == c).mean() for c in cats])
    pb = np.array([(b == c).mean() for c in cats])
    return float(0.5 * np.abs(pa - pb).sum())


def _patients_with_values(values: np.ndarray) -> int:
    return int((~np.isnan(values)).reshape(len(values), -1).any(axis=1).sum())


def marginal_audit(
    real: GridCohort,
    synthetic: GridCohort,
    z_real: np.ndarray,
    z_synth: np.ndarray,
    schema: Schema,
    params: Parameters,
) -> FamilyOutput:
    """KS (continuous) or total variation (codes) per variable and static, time ignored."""
    rows = []
    alpha, min_p = params.noise_alpha, params.min_patients
    for j, var in enumerate(real.variables):
        a, b = z_real[:, :, j], z_synth[:, :, j]
        n_r, n_s = _patients_with_values(a), _patients_with_values(b)
        distance = _tvd if schema.variable(var).is_numeric_code else ks_distance
        value = distance(a.ravel(), b.ravel()) if min(n_r, n_s) >= min_p else math.nan
        rows.append(
            verdict_row(
                var,
                "marginal",
                "distribution distance (time ignored)",
                value,
                params.marginal_ks,
                ks_critical(n_r, n_s, alpha),
                n_r,
                n_s,
                real=float(np.nanmedian(real.values[:, :, j])) if n_r else math.nan,
                synthetic=float(np.nanmedian(synthetic.values[:, :, j])) if n_s else math.nan,
            )
        )
    for name in real.static_names:
        a, b = real.static(name), synthetic.static(name)
        n_r, n_s = int((~np.isnan(a)).sum()), int((~np.isnan(b)).sum())
        coded = schema.field(name).type in (VariableType.binary, VariableType.categorical)
        distance = _tvd if coded else ks_distance
        value = distance(a, b) if min(n_r, n_s) >= min_p else math.nan
        rows.append(
            verdict_row(
                name,
                "marginal",
                "distribution distance (static)",
                value,
                params.marginal_ks,
                ks_critical(n_r, n_s, alpha),
                n_r,
                n_s,
                real=float(np.nanmean(a)) if n_r else math.nan,
                synthetic=float(np.nanmean(b)) if n_s else math.nan,
            )
        )
    table = verdict_frame(rows)
    out = FamilyOutput(tables={"marginal": table})
    out.measurements = [share_failing(table, "marginal", "marginal_overall", "variables/statics")]
    out.plots["histograms"] = histograms(real, synthetic)
    out.plots["trajectories"] = trajectory_bands(real, synthetic)
    return out


def histograms(real: GridCohort, synthetic: GridCohort) -> dict[str, dict]:
    """Density histograms of each variable's values (schema units) on shared bins."""
    out = {}
    for j, var in enumerate(real.variables):
        a = real.values[:, :, j][~np.isnan(real.values[:, :, j])]
        b = synthetic.values[:, :, j][~np.isnan(synthetic.values[:, :, j])]
        if len(a) == 0 and len(b) == 0:
            continue
        both = np.concatenate([a, b]).astype(np.float64)
        lo, hi = np.quantile(both, [0.005, 0.995])
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, HIST_BINS + 1)
        ha = np.histogram(np.clip(a, lo, hi), edges, density=True)[0] if len(a) else None
        hb = np.histogram(np.clip(b, lo, hi), edges, density=True)[0] if len(b) else None
        out[var] = {"edges": edges, "real": ha, "synthetic": hb}
    return out


def trajectory_bands(real: GridCohort, synthetic: GridCohort, seed: int = 0) -> dict[str, dict]:
    """Real 10/50/90th percentiles per step for the most measured variables + synthetic samples."""
    rate = (~np.isnan(real.values)).mean(axis=(0, 1))
    order = [j for j in np.argsort(-rate, kind="stable") if rate[j] > 0][:N_TRAJECTORY_VARIABLES]
    rng = np.random.default_rng(seed)
    picks = rng.choice(
        synthetic.n_patients, size=min(N_TRAJECTORY_SAMPLES, synthetic.n_patients), replace=False
    )
    hours = np.arange(real.n_steps) * real.step_hours
    out = {}
    for j in order:
        v = real.values[:, :, j].astype(np.float64)
        enough = (~np.isnan(v)).sum(axis=0) >= 5
        band = np.full((3, real.n_steps), np.nan)
        if enough.any():
            band[:, enough] = np.nanpercentile(v[:, enough], [10, 50, 90], axis=0)
        samples = synthetic.values[picks, :, j].astype(np.float64)
        out[real.variables[j]] = {"hours": hours, "band": band, "samples": samples}
    return out
