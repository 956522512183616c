"""Whole-stay representation shared by the membership, memorisation and utility audits.

A stay becomes one vector: statics (and outcomes) plus, per variable, summaries of its grid series
(mean, std, min, max, first, last, slope, observation rate) and shape features (time of the
minimum and maximum, roughness = mean absolute change between consecutive measurements).

Scaling uses only the schema's public ranges -- ``z = (t(x) - mid) / half_width`` of the
(transformed) normal range, falling back to the hard limits -- never statistics fitted on real
data, so the representation of a record does not depend on who else is in the cohort. ``z`` is
clipped to the scaled hard limits so one absurd synthetic value cannot dominate a distance.
Unmeasured summaries are NaN; ``filled()`` puts 0 (the middle of the normal range) there for
distance-based audits, while the observation rate says the variable was missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinsynth.grid import GridCohort
from clinsynth.schema import BaseField, Schema, VariableType

SUMMARIES = (
    "mean",
    "std",
    "min",
    "max",
    "first",
    "last",
    "slope",
    "obs_rate",
    "t_argmin",
    "t_argmax",
    "roughness",
)


def _transform(x: np.ndarray, field: BaseField) -> np.ndarray:
    if field.transform == "none":
        return x
    if field.transform == "log1p":
        return np.log1p(np.maximum(x, 0.0))
    lo, hi = field.hard_limits or (0.0, 1.0)
    floor = lo if lo > 0 else max(hi * 1e-4, 1e-6)  # log of 0 is undefined; floor is public
    return np.log(np.maximum(x, floor))


def field_scale(field: BaseField) -> tuple[float, float]:
    """(mid, half width) of the field's public range in transformed units."""
    rng = field.normal_range or field.hard_limits
    if field.is_numeric_code or rng is None:
        return 0.0, 1.0
    lo, hi = _transform(np.asarray(rng, dtype=np.float64), field)
    half = (hi - lo) / 2.0
    return float((lo + hi) / 2.0), float(half) if half > 0 else 1.0


def scale(values: np.ndarray, field: BaseField) -> np.ndarray:
    """Values in the field's unit -> public-range units, clipped to the scaled hard limits."""
    x = np.asarray(values, dtype=np.float64)
    if field.type is VariableType.categorical:
        k = max(len(field.categories or []) - 1, 1)
        return x / k
    if field.type is VariableType.binary:
        return x
    mid, half = field_scale(field)
    z = (_transform(x, field) - mid) / half
    if field.hard_limits is not None:
        lo, hi = (_transform(np.asarray(field.hard_limits, dtype=np.float64), field) - mid) / half
        z = np.clip(z, lo, hi)
    return z


def scaled_grid(grid: GridCohort, schema: Schema) -> np.ndarray:
    """The grid values in public-range units: ``z[n, t, v]`` (NaN = unmeasured)."""
    z = np.empty(grid.values.shape, dtype=np.float64)
    for j, name in enumerate(grid.variables):
        z[:, :, j] = scale(grid.values[:, :, j], schema.variable(name))
    return z


def previous_observed(mask: np.ndarray) -> np.ndarray:
    """Index of the previous measured step (before t) along axis 1; -1 where there is none."""
    n_steps = mask.shape[1]
    steps = np.arange(n_steps).reshape(1, -1, *([1] * (mask.ndim - 2)))
    last = np.where(mask, steps, -1)
    last = np.maximum.accumulate(last, axis=1)
    prev = np.full_like(last, -1)
    prev[:, 1:] = last[:, :-1]
    return prev


def series_summaries(z: np.ndarray) -> dict[str, np.ndarray]:
    """Per-patient, per-variable summaries of ``z[n, t, v]``; each array is ``[n, v]``.

    Times are fractions of the horizon (0..1), so slopes are "change over the whole stay".
    """
    n, t_len, _ = z.shape
    mask = ~np.isnan(z)
    count = mask.sum(axis=1)
    has = count > 0
    x0 = np.where(mask, z, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x0.sum(axis=1) / count
        var = np.where(mask, (z - mean[:, None, :]) ** 2, 0.0).sum(axis=1) / count
        t = (np.arange(t_len) / max(t_len - 1, 1)).reshape(1, -1, 1)
        t_mean = np.where(mask, t, 0.0).sum(axis=1) / count
        dt = np.where(mask, t - t_mean[:, None, :], 0.0)
        sxx = (dt**2).sum(axis=1)
        sxy = (dt * (x0 - np.where(mask, mean[:, None, :], 0.0))).sum(axis=1)
        slope = np.where(count >= 2, sxy / np.where(sxx > 0, sxx, np.nan), np.nan)
    hi = np.where(mask, z, -np.inf)
    lo = np.where(mask, z, np.inf)
    first_idx = mask.argmax(axis=1)
    last_idx = t_len - 1 - mask[:, ::-1, :].argmax(axis=1)
    rows = np.arange(n)[:, None]
    cols = np.arange(z.shape[2])[None, :]
    prev = previous_observed(mask)
    prev_val = np.take_along_axis(z, np.maximum(prev, 0), axis=1)
    step_mask = mask & (prev >= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rough = np.where(step_mask, np.abs(z - prev_val), 0.0).sum(axis=1) / step_mask.sum(axis=1)
    nan = np.nan
    out = {
        "mean": np.where(has, mean, nan),
        "std": np.where(has, np.sqrt(var), nan),
        "min": np.where(has, lo.min(axis=1), nan),
        "max": np.where(has, hi.max(axis=1), nan),
        "first": np.where(has, z[rows, first_idx, cols], nan),
        "last": np.where(has, z[rows, last_idx, cols], nan),
        "slope": slope,
        "obs_rate": count / t_len,
        "t_argmin": np.where(has, lo.argmin(axis=1) / max(t_len - 1, 1), nan),
        "t_argmax": np.where(has, hi.argmax(axis=1) / max(t_len - 1, 1), nan),
        "roughness": np.where(count >= 2, rough, nan),
    }
    out["count"] = count
    return out


def static_block(
    grid: GridCohort, schema: Schema, include_outcomes: bool
) -> tuple[np.ndarray, list[str]]:
    """Statics (and outcomes) in public-range units; categorical fields one-hot (schema order)."""
    names = [*schema.static_names, *(schema.outcome_names if include_outcomes else [])]
    columns, labels = [], []
    for name in names:
        field = schema.field(name)
        raw = grid.static(name)
        if field.type is VariableType.categorical:
            for k, cat in enumerate(field.categories or []):
                col = np.where(np.isnan(raw), np.nan, (raw == k).astype(np.float64))
                columns.append(col)
                labels.append(f"{name}={cat}")
        else:
            columns.append(scale(raw, field))
            labels.append(name)
    if not columns:
        return np.empty((grid.n_patients, 0)), []
    return np.column_stack(columns), labels


@dataclass
class StayFeatures:
    """One row per patient; ``values`` keeps NaN for unmeasured summaries."""

    patient_ids: np.ndarray
    names: list[str]
    values: np.ndarray
    z: np.ndarray
    summaries: dict[str, np.ndarray]

    def filled(self) -> np.ndarray:
        """NaN -> 0 (the middle of the public normal range): for distances and kNN."""
        return np.nan_to_num(self.values, nan=0.0)

    def without(self, fields: list[str]) -> np.ndarray:
        """The values minus the columns of these statics/outcomes (e.g. labels for utility)."""
        drop = set(fields)
        keep = [i for i, n in enumerate(self.names) if n.split("=")[0] not in drop]
        return self.values[:, keep]


def stay_features(grid: GridCohort, schema: Schema, include_outcomes: bool = True) -> StayFeatures:
    """The whole-stay vector of every patient in ``grid`` (see module docstring)."""
    z = scaled_grid(grid, schema)
    summ = series_summaries(z)
    statics, static_names = static_block(grid, schema, include_outcomes)
    blocks = [statics] + [summ[s] for s in SUMMARIES]
    names = static_names + [f"{v}:{s}" for s in SUMMARIES for v in grid.variables]
    return StayFeatures(
        patient_ids=grid.patient_ids,
        names=names,
        values=np.column_stack(blocks),
        z=z,
        summaries=summ,
    )
