"""Schema-only encoding of a cohort into the tensors the generator learns, and back.

Privacy: every constant here comes from the schema (public domain knowledge) — transforms, hard
limits, normal ranges, category lists, precision, the grid. No statistic of the real data (no mean,
quantile, rate or category set) is computed outside DP-SGD; the model learns all of those under
the privacy budget. The number of patients N is treated as public (it sets δ), as is standard.

Time-varying numeric values are transformed (none/log/log1p) and standardised by the centre and
half-width of the normal range (or of the hard limits when there is none) in transformed space,
so the normal range maps to [-1, 1]. Statics and outcomes are each encoded as ONE categorical
code with an explicit "missing" class last (Height is missing for about half of PhysioNet):
binary → {0, 1, missing}, categorical → {categories..., missing}, numeric → bins uniform over
the normal range ± 4 half-widths in transformed space (a tail bin up to each hard limit beyond)
+ missing: a flexible discretised likelihood whose bins are public.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinsynth.errors import ClinsynthError
from clinsynth.generator import severity
from clinsynth.generator.constraints import Bound, compile_rules
from clinsynth.schema import BaseField, Schema, Variable, VariableType

STATIC_BINS = 40
TAIL_Z = 4.0  # static bins are fine within centre ± 4 half-widths, one tail bin beyond
STATIC_GROUP = 4  # adjacent static bins calibrated as one group (ten of a 40-bin static)
MAX_SPAN = 16.0  # hard limits lie at most this many half-widths from the centre (about)
NUMERIC_COND_SCALE = 3.0  # numeric statics enter the networks as (bin-centre z) / 3
Z_CLIP = 32.0  # standardised values of a field without hard limits are clipped here


@dataclass(frozen=True)
class NumericScale:
    """Forward/inverse map between schema units and the standardised space of one field."""

    transform: str
    floor: float
    centre: float
    half: float
    low: float | None
    high: float | None
    decimals: int | None

    @classmethod
    def of(cls, field: BaseField) -> NumericScale:
        rng = field.normal_range or field.hard_limits
        if rng is None:
            rng = (0.0, 1.0) if field.type is VariableType.integer else None
        if rng is None:
            raise ClinsynthError(
                f"{field.name}: a numeric field needs hard_limits or normal_range."
            )
        floor = _log_floor(field)
        lo, hi = (_fwd(field.transform, floor, np.float64(x)) for x in rng)
        half = (hi - lo) / 2 if hi > lo else 1.0
        low, high = field.hard_limits if field.hard_limits is not None else (None, None)
        if low is not None:
            # a normal range that is tiny next to the hard limits (troponin: 0-0.01 vs 0-100)
            # would put ordinary ICU values hundreds of units out: cap the span at ±MAX_SPAN
            h_lo, h_hi = (_fwd(field.transform, floor, np.float64(x)) for x in (low, high))
            half = max(half, (h_hi - h_lo) / (2 * MAX_SPAN))
        decimals = 0 if field.type is VariableType.integer else field.precision
        return cls(field.transform, floor, (hi + lo) / 2, half, low, high, decimals)

    @property
    def z_limits(self) -> tuple[float, float]:
        """The hard limits in standardised space (±Z_CLIP without hard limits)."""
        if self.low is None:
            return -Z_CLIP, Z_CLIP
        return tuple(
            float((_fwd(self.transform, self.floor, np.float64(x)) - self.centre) / self.half)
            for x in (self.low, self.high)
        )

    def encode(self, x: np.ndarray) -> np.ndarray:
        z = (_fwd(self.transform, self.floor, x) - self.centre) / self.half
        return np.clip(z, *self.z_limits)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Inverse transform, clip to the hard limits, round to the schema precision."""
        t = np.clip(z, *self.z_limits) * self.half + self.centre
        if self.transform == "log":
            x = np.exp(t)
        elif self.transform == "log1p":
            x = np.expm1(t)
        else:
            x = t
        if self.low is not None:
            x = np.clip(x, self.low, self.high)
        if self.decimals is not None:
            x = np.round(x, self.decimals)
            if self.low is not None:  # rounding must not step outside the limits
                x = np.clip(x, self.low, self.high)
        return x


def _log_floor(field: BaseField) -> float:
    """Smallest value fed to log: the lower hard limit, or a tiny positive value when it is 0."""
    if field.transform != "log":
        return 0.0
    lo = field.hard_limits[0] if field.hard_limits else 0.0
    if lo > 0:
        return float(lo)
    ref = field.normal_range or field.hard_limits or (0.0, 1.0)
    return max(float(ref[1]) * 1e-3, 1e-6)


def _fwd(transform: str, floor: float, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if transform == "log":
        return np.log(np.maximum(x, floor))
    if transform == "log1p":
        return np.log1p(np.maximum(x, 0.0))
    return x


@dataclass(frozen=True)
class VariableCoding:
    """How one time-varying variable is modelled: ``kind`` gauss / binary / categorical."""

    name: str
    kind: str
    n_categories: int
    scale: NumericScale | None

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Model-space values in schema units, as exported (binary / category: the code)."""
        return self.scale.decode(z) if self.kind == "gauss" else np.round(z)


@dataclass(frozen=True)
class StaticCoding:
    """One static or outcome as a categorical code; the last class means 'missing'."""

    name: str
    kind: str  # binary / categorical / numeric
    n_classes: int
    scale: NumericScale | None
    edges: np.ndarray | None  # bin edges in standardised space (numeric only)

    @property
    def missing_class(self) -> int:
        return self.n_classes - 1

    @property
    def cond_width(self) -> int:
        """Width of this field in the conditioning vector fed to the networks."""
        return self.n_classes if self.kind == "categorical" else 2


def variable_coding(field: BaseField) -> VariableCoding:
    if field.type is VariableType.binary:
        return VariableCoding(field.name, "binary", 2, None)
    if field.type is VariableType.categorical:
        return VariableCoding(field.name, "categorical", len(field.categories or []), None)
    return VariableCoding(field.name, "gauss", 0, NumericScale.of(field))


def _within_stay_scale(field: Variable) -> float:
    """The schema's ``within_stay_sd`` in standardised units (untransformed: a linear map)."""
    if field.within_stay_sd is None or field.is_numeric_code:
        return 1.0
    return float(field.within_stay_sd / NumericScale.of(field).half)


def static_groups(n_classes: int) -> np.ndarray:
    """Group of each class of a binned static ``[n_classes]``: :data:`STATIC_GROUP` adjacent
    bins share one, the missing class (the last) has its own. Calibration releases the groups'
    shares, not the bins' (``calibration.release_static_rates``)."""
    groups = np.arange(n_classes) // STATIC_GROUP
    groups[-1] = groups[-2] + 1
    return groups


def static_coding(field: BaseField, n_bins: int = STATIC_BINS) -> StaticCoding:
    if field.type is VariableType.binary:
        return StaticCoding(field.name, "binary", 3, None, None)
    if field.type is VariableType.categorical:
        return StaticCoding(field.name, "categorical", len(field.categories or []) + 1, None, None)
    scale = NumericScale.of(field)
    lo, hi = field.hard_limits or field.normal_range or (0.0, 1.0)
    z_lo, z_hi = (float(scale.encode(np.array(v))) for v in (lo, hi))
    if field.type is VariableType.integer:  # no more bins than integer values
        n_bins = int(min(n_bins, max(2, hi - lo + 1)))
    # fine bins over centre ± 4 half-widths of the normal range, one wide tail bin on each side
    # that the hard limits extend beyond it (a wide hard limit must not make the bins coarse)
    inner_lo, inner_hi = max(z_lo, -TAIL_Z), min(z_hi, TAIL_Z)
    n_tails = int(z_lo < inner_lo) + int(z_hi > inner_hi)
    edges = np.linspace(inner_lo, inner_hi, n_bins - n_tails + 1)
    edges = np.concatenate(
        [[z_lo] if z_lo < inner_lo else [], edges, [z_hi] if z_hi > inner_hi else []]
    )
    return StaticCoding(field.name, "numeric", len(edges), scale, edges)


@dataclass(frozen=True)
class Encoding:
    """Everything needed to move between a schema's units and model tensors (public only)."""

    variables: list[VariableCoding]
    statics: list[StaticCoding]  # the schema's statics, then its outcomes
    n_static: int  # how many of ``statics`` are statics proper (the rest are outcomes)
    n_steps: int
    step_hours: float
    bounds: tuple[Bound, ...] = ()  # the schema's rules, kept while sampling (constraints)
    unenforced_rules: tuple[str, ...] = ()
    # per variable: the first variable of its schema panel (itself when in none), which names
    # the panel: sampling measures a panel as one event (module panels) or, without released
    # rates, gives its members this variable's uniform
    mask_source: tuple[int, ...] | None = None
    # per variable: drawn from a blood sample (schema group "lab"), so measured in rounds
    drawn_from_blood: tuple[bool, ...] = ()
    # per variable: the schema's within_stay_sd in standardised units (1 where it gives none),
    # the scale calibration's within-stay statistics are released on
    within_stay_scales: tuple[float, ...] = ()

    @classmethod
    def from_schema(cls, schema: Schema) -> Encoding:
        """The schema's statics, the hidden severity score (:mod:`severity`), the outcomes."""
        latent = StaticCoding(severity.NAME, "numeric", len(severity.EDGES), None, severity.EDGES)
        bounds, unenforced = compile_rules(schema)
        index = {name: i for i, name in enumerate(schema.variable_names)}
        source = list(range(len(schema.variables)))
        for panel in schema.panels:
            for name in panel.variables:
                source[index[name]] = index[panel.variables[0]]
        return cls(
            variables=[variable_coding(v) for v in schema.variables],
            statics=[
                *(static_coding(f) for f in schema.statics),
                latent,
                *(static_coding(f) for f in schema.outcomes),
            ],
            n_static=len(schema.statics) + 1,
            n_steps=schema.grid.n_steps,
            step_hours=schema.grid.step_hours,
            bounds=bounds,
            unenforced_rules=tuple(unenforced),
            mask_source=tuple(source),
            drawn_from_blood=tuple(v.group == "lab" for v in schema.variables),
            within_stay_scales=tuple(_within_stay_scale(v) for v in schema.variables),
        )

    @property
    def severity_index(self) -> int:
        """Position of the hidden severity field: the last of the statics proper."""
        return self.n_static - 1

    @property
    def static_cond_width(self) -> int:
        """Width of the statics-only part (the prefix) of the conditioning vector."""
        return sum(f.cond_width for f in self.statics[: self.n_static])

    @property
    def n_variables(self) -> int:
        return len(self.variables)

    def input_maps(self) -> tuple[list[float], list[float]]:
        """(scale, shift) per variable mapping model-space values to network inputs.

        Numeric z-values pass through; binary 0/1 → ±1; categorical index → spread over [-1, 1].
        """
        scale, shift = [], []
        for var in self.variables:
            if var.kind == "gauss":
                scale.append(1.0)
                shift.append(0.0)
            elif var.kind == "binary":
                scale.append(2.0)
                shift.append(-1.0)
            else:
                scale.append(2.0 / max(var.n_categories - 1, 1))
                shift.append(-1.0)
        return scale, shift

    def indices(self, kind: str) -> list[int]:
        return [i for i, v in enumerate(self.variables) if v.kind == kind]

    def charted(self, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Model-space values ``x [N,T,V]`` (measured where ``m``) as a chart holds them:
        within the hard limits and at the schema's precision (decoded, then encoded again).

        Real stays are measured this way (undoing :meth:`dequantise`), and sampled ones as
        they are exported, so that within-stay statistics compare like with like: rounding GCS
        to whole points adds noise that lowers its lag-1 by about 0.01, on either side."""
        return self.encode_series(self.decode_series(x, m))[0]

    # ---------------------------------------------------------------- series
    def encode_series(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``values[N,T,V]`` (NaN = unmeasured) → (standardised values with 0 where missing, mask).

        Binary stays 0/1; categorical stays the category index.
        """
        mask = ~np.isnan(values)
        out = np.zeros(values.shape, dtype=np.float32)
        for i, var in enumerate(self.variables):
            col = values[..., i]
            m = mask[..., i]
            if var.kind == "gauss":
                out[..., i][m] = var.scale.encode(col[m])
            elif var.kind == "binary":
                out[..., i][m] = (col[m] > 0.5).astype(np.float32)
            else:
                out[..., i][m] = np.clip(np.round(col[m]), 0, var.n_categories - 1)
        return out, mask.astype(np.float32)

    def dequantise(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Spread values charted at a precision uniformly over their rounding interval.

        A value recorded to 0 decimals stands for anything within ±0.5; training on the rounded
        points would let the model squeeze a component onto them (a density without bound,
        exploding gradients), and sampling rounds to the precision again anyway.
        """
        out = values.astype(np.float64, copy=True)
        for i, var in enumerate(self.variables):
            if var.kind != "gauss" or var.scale.decimals is None:
                continue
            col = out[..., i]
            seen = ~np.isnan(col)
            width = 10.0**-var.scale.decimals
            col[seen] += (rng.random(int(seen.sum())) - 0.5) * width
            if var.scale.low is not None:
                col[seen] = np.clip(col[seen], var.scale.low, var.scale.high)
        return out

    def decode_series(self, z: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`encode_series`: schema units, NaN where ``mask`` is 0."""
        out = np.full(z.shape, np.nan, dtype=np.float64)
        for i, var in enumerate(self.variables):
            m = mask[..., i] > 0.5
            out[..., i][m] = var.decode(z[..., i][m])
        return out

    # ---------------------------------------------------------------- statics
    def encode_statics(
        self, statics: np.ndarray, severity_score: np.ndarray | None = None
    ) -> np.ndarray:
        """``statics[N,S]`` in cohort coding (NaN missing) and the stays' severity scores
        (:func:`severity.score`; none: missing) → class codes ``[N,S+1]`` (int64)."""
        n = statics.shape[0]
        score = np.full(n, np.nan) if severity_score is None else severity_score
        k = self.severity_index
        statics = np.column_stack([statics[:, :k], score, statics[:, k:]])
        codes = np.zeros(statics.shape, dtype=np.int64)
        for j, f in enumerate(self.statics):
            codes[:, j] = _field_codes(f, statics[:, j])
        return codes

    def severity_codes(self, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Class codes ``[N]`` of the severity field for stays ``x, m [N, T, V]`` (model space)."""
        score = severity.score(x, m, self.indices("gauss"))
        return _field_codes(self.statics[self.severity_index], score)

    @property
    def decoded_names(self) -> list[str]:
        """Names of :meth:`decode_statics`' columns: the statics and outcomes, without the
        hidden severity score."""
        return [f.name for j, f in enumerate(self.statics) if j != self.severity_index]

    def decode_statics(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Class codes → cohort coding ``[N,S]`` (the severity score is dropped); numeric values
        drawn uniformly within their bin."""
        out = np.full(codes.shape, np.nan, dtype=np.float64)
        for j, f in enumerate(self.statics):
            if j == self.severity_index:
                continue
            c = codes[:, j]
            present = c != f.missing_class
            if f.kind == "numeric":
                lo, hi = f.edges[c[present]], f.edges[c[present] + 1]
                z = lo + (hi - lo) * rng.random(int(present.sum()))
                out[present, j] = f.scale.decode(z)
            else:
                out[present, j] = c[present]
        return np.delete(out, self.severity_index, axis=1)

    def static_condition(self, codes: np.ndarray) -> np.ndarray:
        """Codes ``[N,S]`` → the smooth conditioning vector ``[N, sum(cond_width)]``.

        Numeric: (bin-centre z, missing); binary: (±1, missing); categorical: one-hot incl. missing.
        """
        cols = []
        for j, f in enumerate(self.statics):
            c = codes[:, j]
            miss = (c == f.missing_class).astype(np.float32)
            if f.kind == "categorical":
                cols.append(np.eye(f.n_classes, dtype=np.float32)[c])
            elif f.kind == "binary":
                val = np.where(miss > 0, 0.0, 2.0 * c - 1.0).astype(np.float32)
                cols.append(np.stack([val, miss], axis=1))
            else:
                mids = (f.edges[:-1] + f.edges[1:]) / 2
                val = np.where(miss > 0, 0.0, mids[np.minimum(c, len(mids) - 1)])
                cols.append(np.stack([val.astype(np.float32) / NUMERIC_COND_SCALE, miss], axis=1))
        return np.concatenate(cols, axis=1).astype(np.float32)

    @property
    def cond_width(self) -> int:
        return sum(f.cond_width for f in self.statics)

    def cond_offsets(self) -> list[int]:
        """Start of each static field in the conditioning vector (for the autoregressive heads)."""
        offsets, pos = [], 0
        for f in self.statics:
            offsets.append(pos)
            pos += f.cond_width
        return offsets


def _field_codes(field: StaticCoding, col: np.ndarray) -> np.ndarray:
    """Class codes of one static field's values (NaN: the missing class). Numeric values are
    binned on the field's edges (beyond them: the end bins); a field without a scale (the
    severity score) is already standardised."""
    miss = np.isnan(col)
    codes = np.full(len(col), field.missing_class, dtype=np.int64)
    present = col[~miss]
    if field.kind == "numeric":
        z = present if field.scale is None else field.scale.encode(present)
        codes[~miss] = np.clip(
            np.searchsorted(field.edges, z, side="right") - 1, 0, len(field.edges) - 2
        )
    elif field.kind == "binary":
        codes[~miss] = (present > 0.5).astype(np.int64)
    else:
        codes[~miss] = np.clip(np.round(present), 0, field.n_classes - 2).astype(np.int64)
    return codes
