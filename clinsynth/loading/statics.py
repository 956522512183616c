"""Per-patient statics from rows: first non-missing value wins, disagreements are counted.

A name that is both a static and a time-varying variable (PhysioNet's ``Weight``) is split by
time: the first row of that name at the patient's first time (the ``00:00`` descriptor) is the
static, every other row is an observation. Only the first such row is taken so that a cohort
written with its statics at the start *and* a measurement at the same time reads back intact.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clinsynth.cohort import CleaningReport


def static_row_mask(
    raw: pd.DataFrame, first_hours: np.ndarray, static_only: set[str], dual: set[str]
) -> np.ndarray:
    """True for rows that describe a static/outcome rather than an observation."""
    variable = raw["variable"].to_numpy(dtype=object)
    is_static = np.isin(variable, list(static_only))
    if dual:
        at_start = np.isin(variable, list(dual)) & (raw["hours"].to_numpy() == first_hours)
        # the first at-start row per (patient, name) only
        candidates = raw.loc[at_start, ["patient_id", "variable"]]
        first_of_name = np.zeros(len(raw), dtype=bool)
        first_of_name[np.flatnonzero(at_start)] = ~candidates.duplicated().to_numpy()
        is_static |= first_of_name
    return is_static


def first_values(rows: pd.DataFrame, names: list[str], report: CleaningReport) -> pd.DataFrame:
    """Wide per-patient table of ``names`` from (patient_id, variable, value) rows in file order.

    Counts ``static_conflict`` per name: patients whose rows give more than one distinct value.
    """
    present = rows.dropna(subset=["value"])
    grouped = present.groupby(["patient_id", "variable"], sort=False)["value"]
    summary = grouped.agg(["first", "nunique"])
    conflicts = summary[summary["nunique"] > 1].groupby(level="variable").size()
    for name, n in conflicts.items():
        report.add("static_conflict", str(name), int(n))
    table = summary["first"].unstack("variable").reindex(columns=names).astype(float)
    table.columns.name = None
    return table
