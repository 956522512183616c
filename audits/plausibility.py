"""Clinical plausibility against the schema: limits, rates of change, rules, sequences.

Four kinds of issue, each counted per variable (or rule) and per patient:

- ``hard_limit``: a value (or static) outside the schema's hard limits;
- ``rate_of_change``: consecutive measurements on the grid changing faster than
  ``max_rate_per_hour`` (grid steps keep the time difference >= one step, so charting two values
  a minute apart cannot fake a huge rate);
- ``rule``: a cross-variable rule of the schema broken in a grid step where its variables were
  all measured (``less_than``, ``between``, ``implies``);
- ``impossible``: things no real stay can contain -- a measurement before admission or after the
  horizon, two different values of one variable at the same time, a binary/categorical code that
  does not exist, a non-integer value of an integer variable.

A synthetic cohort is never failed for being as implausible as the real training data it
imitates (real artefacts exist): the allowance of each rate is the real rate plus sampling noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from audits.features import previous_observed
from audits.policy import Parameters
from audits.result import FamilyOutput, Measurement
from audits.stats import proportion_allowance
from clinsynth.cohort import CleaningReport, Cohort
from clinsynth.grid import GridCohort, to_grid
from clinsynth.schema import BaseField, Schema, VariableType

KINDS = ("hard_limit", "rate_of_change", "rule", "impossible")
ISSUE_COLUMNS = ["patient_id", "kind", "variable", "hours", "message"]
MAX_MESSAGES_PER_PATIENT = 12
# loader rules (clinsynth.loading.values) that removed a value the generator wrote
LOADER_LIMIT_RULES = ("outside_hard_limits",)
LOADER_CODE_RULES = ("not_allowed_value", "non_numeric")


def _g(x: float) -> str:
    return f"{x:.4g}"


@dataclass
class Scan:
    """All issues found in one cohort plus the denominators of their rates."""

    issues: pd.DataFrame
    n_patients: int
    n_values: int
    values_per_variable: dict[str, int]
    pairs_per_variable: dict[str, int]
    rule_evaluations: dict[str, int]
    loader_removed: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return int((self.issues["kind"] == kind).sum())


def _invalid_code(values: np.ndarray, f: BaseField) -> np.ndarray:
    if f.type is VariableType.binary:
        return ~np.isin(values, (0.0, 1.0))
    if f.type is VariableType.categorical:
        k = len(f.categories or [])
        return (values != np.round(values)) | (values < 0) | (values >= k)
    if f.type is VariableType.integer:
        return np.abs(values - np.round(values)) > 1e-6
    return np.zeros(len(values), dtype=bool)


def _issues(pid, kind, variable, hours, messages) -> pd.DataFrame:
    n = len(messages)
    return pd.DataFrame(
        {
            "patient_id": np.asarray(pid, dtype=object),
            "kind": [kind] * n,
            "variable": np.broadcast_to(np.asarray(variable, dtype=object), (n,)),
            "hours": np.asarray(hours, dtype=float),
            "message": list(messages),
        }
    )


def _observation_issues(cohort: Cohort) -> list[pd.DataFrame]:
    schema, obs = cohort.schema, cohort.observations
    horizon = schema.grid.horizon_hours
    found = []
    for name, group in obs.groupby("variable", sort=False):
        if name not in schema.variable_names:
            continue
        f = schema.variable(str(name))
        v, h, p = group["value"].to_numpy(), group["hours"].to_numpy(), group["patient_id"]
        if f.hard_limits is not None and not f.is_numeric_code:
            lo, hi = f.hard_limits
            bad = (v < lo) | (v > hi)
            msgs = [
                f"{name} {_g(x)} {f.unit} at {t:.1f} h is outside the hard limits "
                f"[{_g(lo)}, {_g(hi)}]"
                for x, t in zip(v[bad], h[bad], strict=True)
            ]
            found.append(_issues(p.to_numpy()[bad], "hard_limit", name, h[bad], msgs))
        bad = _invalid_code(v, f)
        msgs = [
            f"{name} value {_g(x)} at {t:.1f} h is not a valid {f.type.value} value"
            for x, t in zip(v[bad], h[bad], strict=True)
        ]
        found.append(_issues(p.to_numpy()[bad], "impossible", name, h[bad], msgs))
    outside = (obs["hours"] < 0) | (obs["hours"] > horizon)
    sub = obs[outside]
    msgs = [
        f"{v} measured at {t:.1f} h, outside the stay window 0-{_g(horizon)} h"
        for v, t in zip(sub["variable"], sub["hours"], strict=True)
    ]
    found.append(_issues(sub["patient_id"], "impossible", sub["variable"], sub["hours"], msgs))
    keys = ["patient_id", "hours", "variable"]
    spread = obs.groupby(keys, sort=False)["value"].agg(["min", "max"])
    conflict = spread[spread["max"] > spread["min"]].reset_index()
    msgs = [
        f"{v} has two different values at {t:.1f} h ({_g(a)} and {_g(b)})"
        for v, t, a, b in zip(
            conflict["variable"], conflict["hours"], conflict["min"], conflict["max"], strict=True
        )
    ]
    found.append(
        _issues(conflict["patient_id"], "impossible", conflict["variable"], conflict["hours"], msgs)
    )
    return found


def _static_issues(cohort: Cohort) -> tuple[list[pd.DataFrame], int]:
    schema, found, n_values = cohort.schema, [], 0
    for f in [*schema.statics, *schema.outcomes]:
        if f.name not in cohort.statics.columns:
            continue
        col = cohort.statics[f.name]
        present = col.notna().to_numpy()
        v, ids = col.to_numpy(dtype=float)[present], cohort.statics.index.to_numpy()[present]
        n_values += len(v)
        if f.hard_limits is not None and not f.is_numeric_code:
            lo, hi = f.hard_limits
            bad = (v < lo) | (v > hi)
            msgs = [
                f"{f.name} {_g(x)} {f.unit} is outside the hard limits [{_g(lo)}, {_g(hi)}]"
                for x in v[bad]
            ]
            found.append(_issues(ids[bad], "hard_limit", f.name, np.zeros(bad.sum()), msgs))
        bad = _invalid_code(v, f)
        msgs = [f"{f.name} = {_g(x)} is not a valid {f.type.value} value" for x in v[bad]]
        found.append(_issues(ids[bad], "impossible", f.name, np.zeros(bad.sum()), msgs))
    return found, n_values


def _rate_issues(grid: GridCohort, schema: Schema) -> tuple[list[pd.DataFrame], dict[str, int]]:
    found, pairs = [], {}
    mask = ~np.isnan(grid.values)
    prev = previous_observed(mask)
    has = mask & (prev >= 0)
    steps = np.arange(grid.n_steps)[None, :]
    for j, name in enumerate(grid.variables):
        f = schema.variable(name)
        pairs[name] = int(has[:, :, j].sum())
        if f.max_rate_per_hour is None:
            continue
        x = grid.values[:, :, j].astype(np.float64)
        p = prev[:, :, j]
        before = np.take_along_axis(x, np.maximum(p, 0), axis=1)
        dt = (steps - p) * grid.step_hours
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.abs(x - before) / dt
        bad = has[:, :, j] & (rate > f.max_rate_per_hour)
        n_idx, t_idx = np.nonzero(bad)
        msgs = [
            f"{name} changes by {_g(rate[n, t])} {f.unit}/h between "
            f"{p[n, t] * grid.step_hours:g} h and {t * grid.step_hours:g} h "
            f"(max {_g(f.max_rate_per_hour)} {f.unit}/h)"
            for n, t in zip(n_idx, t_idx, strict=True)
        ]
        found.append(
            _issues(grid.patient_ids[n_idx], "rate_of_change", name, t_idx * grid.step_hours, msgs)
        )
    return found, pairs


def _rule_issues(grid: GridCohort, schema: Schema) -> tuple[list[pd.DataFrame], dict[str, int]]:
    found, evaluated = [], {}
    for rule in schema.rules:
        label = rule.label
        if rule.kind == "less_than":
            a, b = grid.variable(rule.left), grid.variable(rule.right)
            ok = ~np.isnan(a) & ~np.isnan(b)
            bad = ok & (a >= b)
            show = lambda n, t, a=a, b=b, r=rule: (  # noqa: E731
                f"{r.left} {_g(a[n, t])} vs {r.right} {_g(b[n, t])}"
            )
        elif rule.kind == "between":
            x, lo, hi = (grid.variable(n) for n in (rule.target, rule.low, rule.high))
            ok = ~np.isnan(x) & ~np.isnan(lo) & ~np.isnan(hi)
            bad = ok & ((x < lo) | (x > hi))
            show = lambda n, t, x=x, lo=lo, hi=hi, r=rule: (  # noqa: E731
                f"{r.target} {_g(x[n, t])} vs {r.low} {_g(lo[n, t])} / {r.high} {_g(hi[n, t])}"
            )
        else:
            w, x = grid.variable(rule.when), grid.variable(rule.then)
            ok = ~np.isnan(w) & ~np.isnan(x) & np.isclose(w, rule.equals)
            lo, hi = rule.range
            bad = ok & ((x < lo) | (x > hi))
            show = lambda n, t, x=x, r=rule: f"{r.then} {_g(x[n, t])}"  # noqa: E731
        evaluated[label] = int(ok.sum())
        n_idx, t_idx = np.nonzero(bad)
        msgs = [
            f"rule '{label}' broken at {t * grid.step_hours:g} h ({show(n, t)})"
            for n, t in zip(n_idx, t_idx, strict=True)
        ]
        found.append(_issues(grid.patient_ids[n_idx], "rule", label, t_idx * grid.step_hours, msgs))
    return found, evaluated


def scan(
    cohort: Cohort, grid: GridCohort | None = None, loader_report: CleaningReport | None = None
) -> Scan:
    """Find every plausibility issue in ``cohort``.

    ``loader_report``: the cleaning report of a synthetic cohort freshly read from its own files;
    values the loader removed there (outside hard limits, invalid codes) were written by the
    generator and count as issues (without a patient, since the loader dropped them).
    """
    grid = grid if grid is not None else to_grid(cohort)
    obs_found = _observation_issues(cohort)
    static_found, n_static = _static_issues(cohort)
    rate_found, pairs = _rate_issues(grid, cohort.schema)
    rule_found, evaluated = _rule_issues(grid, cohort.schema)
    frames = [f for f in [*obs_found, *static_found, *rate_found, *rule_found] if len(f)]
    issues = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ISSUE_COLUMNS)
    removed = {}
    if loader_report is not None:
        for rule in (*LOADER_LIMIT_RULES, *LOADER_CODE_RULES):
            removed[rule] = loader_report.total(rule)
    return Scan(
        issues=issues,
        n_patients=cohort.n_patients,
        n_values=len(cohort.observations) + n_static,
        values_per_variable=cohort.observations["variable"].value_counts().to_dict(),
        pairs_per_variable=pairs,
        rule_evaluations=evaluated,
        loader_removed=removed,
    )


def patient_flags(cohort: Cohort) -> dict[str, list[str]]:
    """Readable one-line plausibility issues per patient (every patient; [] when none).

    For clinician review sheets: ordered by time, at most a dozen lines per patient.
    """
    found = scan(cohort).issues.sort_values(["patient_id", "hours", "kind"], kind="stable")
    flags: dict[str, list[str]] = {str(p): [] for p in cohort.patient_ids}
    for pid, group in found.groupby("patient_id", sort=False):
        msgs = list(group["message"])
        if len(msgs) > MAX_MESSAGES_PER_PATIENT:
            extra = len(msgs) - MAX_MESSAGES_PER_PATIENT + 1
            msgs = [*msgs[: MAX_MESSAGES_PER_PATIENT - 1], f"... and {extra} more issues"]
        flags[str(pid)] = msgs
    return flags


def _rates(s: Scan) -> dict[str, tuple[int, int]]:
    """(numerator, denominator) of each headline rate."""
    limit_removed = sum(s.loader_removed.get(r, 0) for r in LOADER_LIMIT_RULES)
    code_removed = sum(s.loader_removed.get(r, 0) for r in LOADER_CODE_RULES)
    extra = limit_removed + code_removed
    return {
        "hard_limit": (s.count("hard_limit") + limit_removed, s.n_values + extra),
        "rate_of_change": (s.count("rate_of_change"), sum(s.pairs_per_variable.values())),
        "rule": (s.count("rule"), sum(s.rule_evaluations.values())),
        "impossible": (s.count("impossible") + code_removed, s.n_values + extra),
        "patients": (int(s.issues["patient_id"].nunique()), s.n_patients),
    }


CHECK_OF = {
    "hard_limit": "plausibility_hard_limit_rate",
    "rate_of_change": "plausibility_rate_of_change_rate",
    "rule": "plausibility_rule_rate",
    "impossible": "plausibility_impossible_rate",
    "patients": "plausibility_patients_flagged",
}
WHAT = {
    "hard_limit": "values outside hard limits",
    "rate_of_change": "consecutive measurements changing too fast",
    "rule": "co-measured steps breaking a rule",
    "impossible": "impossible values/sequences",
    "patients": "patients with at least one issue",
}


def _variable_table(syn: Scan, real: Scan, schema: Schema) -> pd.DataFrame:
    rows = []
    for name in [*schema.variable_names, *schema.static_names, *schema.outcome_names]:
        row = {"variable": name}
        for label, s in (("synthetic", syn), ("real", real)):
            issues = s.issues[s.issues["variable"] == name]
            n_val = s.values_per_variable.get(name, 0)
            pairs = s.pairs_per_variable.get(name, 0)
            for kind in ("hard_limit", "rate_of_change", "impossible"):
                n = int((issues["kind"] == kind).sum())
                denom = pairs if kind == "rate_of_change" else n_val
                row[f"{label}_{kind}"] = n
                row[f"{label}_{kind}_rate"] = n / denom if denom else np.nan
            row[f"{label}_patients"] = int(issues["patient_id"].nunique())
        rows.append(row)
    table = pd.DataFrame(rows)
    issue_cols = [c for c in table.columns if c.startswith("synthetic_") and not c.endswith("rate")]
    return table[
        (table[issue_cols] > 0).any(axis=1) | table["variable"].isin(schema.variable_names)
    ]


def _rule_table(syn: Scan, real: Scan) -> pd.DataFrame:
    rows = []
    for label in syn.rule_evaluations:
        n_s = int(((syn.issues["kind"] == "rule") & (syn.issues["variable"] == label)).sum())
        n_r = int(((real.issues["kind"] == "rule") & (real.issues["variable"] == label)).sum())
        e_s, e_r = syn.rule_evaluations[label], real.rule_evaluations.get(label, 0)
        rows.append(
            {
                "rule": label,
                "synthetic_evaluated": e_s,
                "synthetic_violations": n_s,
                "synthetic_rate": n_s / e_s if e_s else np.nan,
                "real_evaluated": e_r,
                "real_violations": n_r,
                "real_rate": n_r / e_r if e_r else np.nan,
            }
        )
    return pd.DataFrame(rows)


def plausibility_audit(
    synthetic: Cohort,
    synth_grid: GridCohort,
    real: Cohort,
    real_grid: GridCohort,
    params: Parameters,
    loader_report: CleaningReport | None = None,
) -> FamilyOutput:
    """Rates of each issue kind in the synthetic cohort, next to the real training cohort's."""
    syn = scan(synthetic, synth_grid, loader_report)
    real_scan = scan(real, real_grid)
    syn_rates, real_rates = _rates(syn), _rates(real_scan)
    out = FamilyOutput()
    for kind, (num, den) in syn_rates.items():
        r_num, r_den = real_rates[kind]
        rate = num / den if den else np.nan
        r_rate = r_num / r_den if r_den else 0.0
        out.measurements.append(
            Measurement(
                CHECK_OF[kind],
                rate if den else 0.0,
                f"{num:,} of {den:,} {WHAT[kind]} ({rate if den else 0:.3%}); real training "
                f"data: {r_rate:.3%}",
                noise=r_rate + proportion_allowance(r_rate, den, r_den, params.noise_alpha),
                applicable=den > 0,
            )
        )
    out.tables["plausibility_variables"] = _variable_table(syn, real_scan, synthetic.schema)
    out.tables["plausibility_rules"] = _rule_table(syn, real_scan)
    top = syn.issues.sort_values(["kind", "variable"], kind="stable").groupby("kind").head(5)
    out.summary = {
        "issues": {k: syn.count(k) for k in KINDS},
        "removed_by_loader": syn.loader_removed,
        "examples": list(top["message"]),  # synthetic records only
    }
    return out
