"""Per-variable verdicts: one row per (variable, structure, metric), rolled up into a check.

A variable fails a metric only when the difference exceeds BOTH the policy's effect-size
tolerance and what sampling noise at these sample sizes could explain -- so a small cohort is
not failed by chance, and a large one is not failed for a difference nobody would care about.
"""

from __future__ import annotations

import math

import pandas as pd

from audits.result import Measurement

COLUMNS = [
    "variable",
    "structure",
    "metric",
    "value",
    "tolerance",
    "threshold",
    "passed",
    "n_real",
    "n_synthetic",
    "real",
    "synthetic",
]


def verdict_row(
    variable: str,
    structure: str,
    metric: str,
    value: float,
    tolerance: float,
    noise: float,
    n_real: float,
    n_synthetic: float,
    real: float = math.nan,
    synthetic: float = math.nan,
) -> dict:
    """One judged metric; ``passed`` is None when the value could not be measured."""
    threshold = max(tolerance, noise)
    passed = None if value != value else bool(value <= threshold)
    return {
        "variable": variable,
        "structure": structure,
        "metric": metric,
        "value": value,
        "tolerance": tolerance,
        "threshold": threshold,
        "passed": passed,
        "n_real": n_real,
        "n_synthetic": n_synthetic,
        "real": real,
        "synthetic": synthetic,
    }


def structure_verdicts(table: pd.DataFrame, structure: str) -> pd.Series:
    """Per variable: True (all measurable metrics pass), False (one fails), None (none measured)."""
    rows = table[table["structure"] == structure]
    out = {}
    for var, group in rows.groupby("variable", sort=False):
        judged = group["passed"].dropna()
        out[var] = None if judged.empty else bool(judged.all())
    return pd.Series(out, dtype=object)


def share_failing(table: pd.DataFrame, structure: str, check: str, what: str) -> Measurement:
    """The check value: share of measurable variables failing ``structure``."""
    verdicts = structure_verdicts(table, structure)
    judged = verdicts.dropna()
    failing = [str(v) for v, ok in judged.items() if not ok]
    if judged.empty:
        return Measurement(check, math.nan, f"no {what} had enough data to judge", applicable=False)
    share = len(failing) / len(judged)
    listed = ", ".join(failing[:12]) + (
        f" and {len(failing) - 12} more" if len(failing) > 12 else ""
    )
    detail = f"{len(failing)} of {len(judged)} {what} fail" + (f": {listed}" if failing else "")
    return Measurement(check, share, detail)


def verdict_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)
