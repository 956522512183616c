"""Collapse repeated (patient, time, variable) observations into one.

Rule: continuous variables take the **mean** of the repeated values (two readings of the same
quantity at the same minute are equally credible); integer, binary and categorical variables take
the **last** value in file order (a mean would invent a code or a non-integer score, and charting
systems append corrections). Each removed row is counted as ``duplicate_collapsed``.
"""

from __future__ import annotations

import pandas as pd

from clinsynth.cohort import CleaningReport

KEYS = ["patient_id", "hours", "variable"]


def collapse_duplicates(
    obs: pd.DataFrame, mean_variables: set[str], report: CleaningReport
) -> pd.DataFrame:
    """``obs`` (file order) with one row per (patient, hours, variable)."""
    repeated = obs.duplicated(KEYS, keep=False).to_numpy()
    if not repeated.any():
        return obs
    dups = obs[repeated]
    grouped = dups.groupby(KEYS, sort=False)["value"]
    merged = pd.concat([grouped.mean().rename("mean"), grouped.last().rename("last")], axis=1)
    merged = merged.reset_index()
    use_mean = merged["variable"].isin(mean_variables)
    merged["value"] = merged["mean"].where(use_mean, merged["last"])
    removed = dups.groupby("variable").size() - merged.groupby("variable").size()
    for name, n in removed.items():
        report.add("duplicate_collapsed", str(name), int(n))
    return pd.concat([obs[~repeated], merged[[*KEYS, "value"]]], ignore_index=True)
