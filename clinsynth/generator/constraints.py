"""The schema's cross-variable rules, kept while sampling: each bounds the value drawn last.

Why: the model learns how co-measured variables relate only approximately. Under DP noise a
mixture's tail put 10.7% of ventilated patients' FiO2 below 0.25 and 3% of invasive MAPs outside
diastolic..systolic (real: 0% and 0.5%); an analyst (and a clinician reading a review sheet)
sees those as errors, not as variability. The rules are public (the schema), so drawing from the
model *conditioned on* them is post-processing of the DP model: no privacy cost.

Every rule is split into pairwise bounds (``between`` → low ≤ target and target ≤ high;
``less_than`` → left < right; ``implies`` → then ∈ range when ``when`` equals its value), and
each bound applies to whichever of its two variables comes later in schema order, the order in
which a grid step's values are drawn, given the earlier one's drawn (rounded) value. A bounded
value that the model drew inside its bounds is kept; one outside is redrawn from the model's
mixture truncated to the bounds (exact inverse-CDF sampling). Kept-if-inside plus
truncated-if-outside is an exact draw from the truncated distribution; the redraws use their own
random stream, so every other draw is the one the model would have made without the rules. The
share redrawn (the model's own mass outside the rule) is reported with the sample, so the repair
is counted, not hidden.

Not enforced (listed in the report): an ``implies`` whose ``then`` is drawn before ``when``, and
bounds on binary or categorical variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from clinsynth.schema import Schema

if TYPE_CHECKING:  # encoding builds its bounds with compile_rules
    from clinsynth.generator.encoding import NumericScale, VariableCoding

MIN_MASS = 1e-12  # truncated mass below this: the value is put on the nearer bound


@dataclass(frozen=True)
class Bound:
    """``target`` ≥ (or ≤) a value: another variable's drawn value (``source``) or a constant,
    applied when ``target`` (and ``source``, or ``when`` = ``equals``) is measured in the step."""

    target: int
    lower: bool
    strict: bool
    rule: str
    source: int | None = None
    constant: float | None = None
    when: int | None = None
    equals: float | None = None


@dataclass
class RuleTally:
    """Per bounded variable: cells where a bound applied and how many the model drew outside."""

    cells: dict[str, int] = field(default_factory=dict)
    redrawn: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, cells: int, redrawn: int) -> None:
        self.cells[name] = self.cells.get(name, 0) + cells
        self.redrawn[name] = self.redrawn.get(name, 0) + redrawn

    def to_dict(self, bounds: tuple[Bound, ...], names: list[str], skipped: list[str]) -> dict:
        per_variable = {
            name: {
                "cells_bounded": self.cells[name],
                "redrawn": self.redrawn[name],
                "redrawn_share": self.redrawn[name] / self.cells[name] if self.cells[name] else 0.0,
                "rules": sorted({b.rule for b in bounds if names[b.target] == name}),
            }
            for name in sorted(self.cells)
        }
        return {
            "what": "values drawn outside a schema rule given the step's earlier values were "
            "redrawn from the model truncated to the rule (module clinsynth.generator.constraints)",
            "variables": per_variable,
            "not_enforced": skipped,
        }


def compile_rules(schema: Schema) -> tuple[tuple[Bound, ...], list[str]]:
    """The schema's rules as pairwise bounds on the later-drawn variable, and the rules (or
    parts) that cannot be enforced that way."""
    index = {v.name: i for i, v in enumerate(schema.variables)}
    numeric = {v.name for v in schema.variables if not v.is_numeric_code}
    bounds: list[Bound] = []
    skipped: list[str] = []
    for rule in schema.rules:
        label = rule.label
        if rule.kind == "implies":
            lo, hi = rule.range
            if index[rule.when] > index[rule.then] or rule.then not in numeric:
                skipped.append(label)
                continue
            for lower, value in ((True, lo), (False, hi)):
                bounds.append(
                    Bound(index[rule.then], lower, False, label, constant=float(value),
                          when=index[rule.when], equals=float(rule.equals))
                )  # fmt: skip
            continue
        pairs = (
            [(rule.left, rule.right, True)]
            if rule.kind == "less_than"
            else [(rule.low, rule.target, False), (rule.target, rule.high, False)]
        )
        for small, large, strict in pairs:  # small < large (or <=)
            if index[small] < index[large]:  # large is drawn later: bounded below by small
                target, source, lower = large, small, True
            else:
                target, source, lower = small, large, False
            if target not in numeric:
                skipped.append(f"{label} (on {target})")
                continue
            bounds.append(Bound(index[target], lower, strict, label, source=index[source]))
    return tuple(bounds), skipped


def natural_bound(scale: NumericScale, value: np.ndarray, lower: bool, strict: bool) -> np.ndarray:
    """The bound on the *unrounded* target so that its value rounded to the schema precision
    satisfies ``target > value`` (``>=``, ``<``, ``<=``)."""
    unit = 0.0 if scale.decimals is None else 10.0**-scale.decimals
    if unit == 0.0:
        tiny = 1e-9 * np.maximum(1.0, np.abs(value)) if strict else 0.0
        return value + tiny if lower else value - tiny
    steps = value / unit
    if lower:  # smallest grid value allowed, then the lowest raw value rounding onto it
        grid = (np.floor(steps + 1e-9) + 1 if strict else np.ceil(steps - 1e-9)) * unit
        return grid - unit / 2 + unit * 1e-3
    grid = (np.ceil(steps - 1e-9) - 1 if strict else np.floor(steps + 1e-9)) * unit
    return grid + unit / 2 - unit * 1e-3


class StepConstraints:
    """The bounds of one grid step, applied variable by variable as ``sample_series`` draws."""

    def __init__(
        self, bounds: tuple[Bound, ...], variables: list[VariableCoding], seed: int
    ) -> None:
        self.variables = variables
        self.seed = seed
        self.gen: torch.Generator | None = None  # the redraws' own stream, made on first use
        self.by_target: dict[int, list[Bound]] = {}
        for b in bounds:
            self.by_target.setdefault(b.target, []).append(b)
        self.tally = RuleTally()

    def limits(
        self, v: int, x_t: torch.Tensor, m_t: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(lower, upper, applies) in model space for variable ``v`` given the step so far;
        None when no rule bounds ``v``."""
        bounds = self.by_target.get(v)
        if not bounds:
            return None
        scale = self.variables[v].scale
        batch = x_t.shape[0]
        lo, hi = np.full(batch, -np.inf), np.full(batch, np.inf)
        applies = np.zeros(batch, dtype=bool)
        measured = m_t[:, v].cpu().numpy() > 0.5
        for b in bounds:
            # Only the bounding variable's column leaves the device: this runs for every
            # bounded variable at every step, so copying the whole step would dominate.
            other = b.source if b.source is not None else b.when
            rows = measured & (m_t[:, other].cpu().numpy() > 0.5)
            decoded = self.variables[other].decode(x_t[:, other].cpu().numpy().astype(np.float64))
            if b.source is not None:
                value = decoded
            else:
                rows &= np.isclose(decoded, b.equals)
                value = np.full(batch, b.constant)
            z = scale.encode(natural_bound(scale, value, b.lower, b.strict))
            if b.lower:
                lo = np.where(rows, np.maximum(lo, z), lo)
            else:
                hi = np.where(rows, np.minimum(hi, z), hi)
            applies |= rows
        hi = np.maximum(hi, lo)  # conflicting bounds: the lower one wins
        return lo, hi, applies

    def enforce(
        self,
        v: int,
        drawn: torch.Tensor,
        limits: tuple[np.ndarray, np.ndarray, np.ndarray],
        logw: torch.Tensor,
        mean: torch.Tensor,
        sd: torch.Tensor,
    ) -> torch.Tensor:
        """``drawn [B]``, with the cells outside their bounds redrawn from the mixture
        (``logw, mean, sd [B, K]``) truncated to them."""
        lo, hi, applies = (torch.from_numpy(a).to(drawn.device) for a in limits)
        outside = applies & ((drawn < lo) | (drawn > hi))
        n_out = int(outside.sum())
        self.tally.add(self.variables[v].name, int(applies.sum()), n_out)
        if n_out == 0:
            return drawn
        if self.gen is None:
            self.gen = torch.Generator(device=drawn.device).manual_seed(self.seed)
        u = torch.rand(2, n_out, generator=self.gen, device=drawn.device)
        redrawn = truncated_mixture(
            logw[outside], mean[outside], sd[outside], lo[outside], hi[outside], u[0], u[1]
        )
        out = drawn.clone()
        out[outside] = redrawn.to(drawn.dtype)
        return out


def truncated_mixture(
    logw: torch.Tensor,
    mean: torch.Tensor,
    sd: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    u_comp: torch.Tensor,
    u_value: torch.Tensor,
) -> torch.Tensor:
    """One draw per row from a Gaussian mixture ``[R, K]`` truncated to ``[lo, hi]`` (``[R]``),
    by inverse CDF with the given uniforms; in float64, tails taken from the nearer side."""
    logw, mean, sd = (t.double() for t in (logw, mean, sd))
    a = (lo.double().unsqueeze(1) - mean) / sd
    b = (hi.double().unsqueeze(1) - mean) / sd
    mass = torch.special.ndtr(b) - torch.special.ndtr(a)
    upper_tail = a > 0  # whole interval above the mean: work with survival functions
    mass = torch.where(upper_tail, torch.special.ndtr(-a) - torch.special.ndtr(-b), mass)
    weight = logw.exp() * mass.clamp(min=0.0)
    total = weight.sum(dim=1)
    cum = torch.cumsum(weight, dim=1) / total.clamp(min=MIN_MASS).unsqueeze(1)
    comp = torch.searchsorted(cum, u_comp.double().unsqueeze(1)).clamp(max=mean.shape[1] - 1)
    pick = lambda t: t.gather(1, comp).squeeze(1)  # noqa: E731
    mu, s, za, zb, tail = pick(mean), pick(sd), pick(a), pick(b), pick(upper_tail)
    u = u_value.double().clamp(1e-12, 1 - 1e-12)
    fa, fb = torch.special.ndtr(za), torch.special.ndtr(zb)
    z_low = torch.special.ndtri(fa + u * (fb - fa))
    sa, sb = torch.special.ndtr(-za), torch.special.ndtr(-zb)
    z_high = -torch.special.ndtri(sa - u * (sa - sb))
    z = torch.where(tail, z_high, z_low)
    x = mu + s * z
    # no usable mass in the interval (far in a tail): the nearer bound
    mixture_mean = (logw.exp() * mean).sum(dim=1)
    nearest = torch.where(mixture_mean < lo.double(), lo.double(), hi.double())
    x = torch.where((total > MIN_MASS) & torch.isfinite(x), x, nearest)
    return torch.minimum(torch.maximum(x, lo.double()), hi.double())
