"""Time column → hours since the stay's start (float); absolute dates never leave this module.

Each distinct time string is parsed once (files repeat the same few thousand times), so the
full PhysioNet file parses in well under a second. Unparseable times come back as NaN; the
caller decides whether they are few enough to drop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_HHMM = r"^(?P<h>\d+):(?P<m>[0-5]?\d)(?::(?P<s>[0-5]?\d(?:\.\d*)?))?$"


def _parse_hhmm(uniques: pd.Series) -> np.ndarray:
    """``HH:MM`` (hours may exceed 24, optional ``:SS``) → hours."""
    parts = uniques.str.strip().str.extract(_HHMM)
    hours = pd.to_numeric(parts["h"], errors="coerce")
    minutes = pd.to_numeric(parts["m"], errors="coerce")
    seconds = pd.to_numeric(parts["s"], errors="coerce").fillna(0.0)
    # total minutes first, then one division: "01:07" gives exactly 67 / 60
    return ((hours * 60.0 + minutes + seconds / 60.0) / 60.0).to_numpy(dtype=float)


def _parse_timestamps(uniques: pd.Series) -> np.ndarray:
    """Absolute timestamps → integer nanoseconds since the epoch (-1 where unparseable).

    Integers, so within-patient differences are exact (7 minutes is exactly 7/60 h).
    """
    stamps = pd.to_datetime(uniques, errors="coerce", format="ISO8601", utc=True)
    if stamps.isna().mean() > 0.5:
        stamps = pd.to_datetime(uniques, errors="coerce", format="mixed", utc=True)
    index = pd.DatetimeIndex(stamps)
    return np.where(index.isna(), -1, index.asi8)


def _hours_since_first(nanoseconds: np.ndarray, patient_ids: pd.Series) -> np.ndarray:
    valid = nanoseconds >= 0
    stamps = pd.Series(np.where(valid, nanoseconds, np.iinfo(np.int64).max))
    start = stamps.groupby(patient_ids.to_numpy()).transform("min").to_numpy()
    return np.where(valid, (nanoseconds - start) / 3.6e12, np.nan)


def all_numeric(raw: pd.Series) -> bool:
    """True when every present value is a number (a timestamp column holding hour offsets)."""
    present = raw.dropna()
    return bool(len(present)) and bool(pd.to_numeric(present, errors="coerce").notna().all())


def parse_times(raw: pd.Series, time_format: str, patient_ids: pd.Series) -> tuple[np.ndarray, str]:
    """Hours since the stay's start for each row (NaN where unparseable), and the format used.

    ``timestamp`` times become hours since the patient's first parseable record: the absolute
    dates are dropped here and never stored. A ``timestamp`` column that holds only numbers is
    taken as hour offsets already (that is how clinsynth writes such cohorts: it never invents
    dates).
    """
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    uniques = pd.Series(uniques, dtype=str)
    if time_format == "timestamp" and all_numeric(uniques):
        time_format = "hours"
    if time_format == "timestamp":
        stamps = np.append(_parse_timestamps(uniques), -1)[codes]  # code -1 (missing) → -1
        return _hours_since_first(stamps, patient_ids), time_format
    if time_format in ("hours", "minutes"):
        parsed = pd.to_numeric(uniques.str.strip(), errors="coerce").to_numpy(dtype=float)
        if time_format == "minutes":
            parsed = parsed / 60.0
    elif time_format == "hhmm":
        parsed = _parse_hhmm(uniques)
    else:  # pragma: no cover - the schema model only allows the four formats
        raise ValueError(f"unknown time format {time_format}")
    hours = np.append(parsed, np.nan)[codes]  # code -1 (missing) maps to NaN
    hours[~np.isfinite(hours)] = np.nan
    return hours, time_format
