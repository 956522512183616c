"""Both file layouts → one raw long table (patient, time text, variable, value text, line).

After this step long and wide files are cleaned by exactly the same rules, so a wide file and
its long twin load to the same cohort.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clinsynth.schema import Layout

RAW_COLUMNS = ["patient_id", "time", "variable", "value", "line"]


def _lines(frame: pd.DataFrame) -> np.ndarray:
    """1-based file line of each row (line 1 is the header), for messages the analyst can use."""
    return np.arange(len(frame), dtype=np.int64) + 2


def strip(series: pd.Series) -> np.ndarray:
    """``str.strip`` applied once per distinct value (ids and names repeat millions of times)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    stripped = pd.Series(uniques, dtype=object).str.strip().to_numpy(dtype=object)
    return np.append(stripped, None)[codes]


def long_to_raw(frame: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """A long file: pick and rename its four columns."""
    raw = pd.DataFrame(
        {
            "patient_id": strip(frame[layout.id_column]),
            "time": frame[layout.time_column],
            "variable": strip(frame[layout.variable_column]),
            "value": frame[layout.value_column],
            "line": _lines(frame),
        }
    )
    return raw


def wide_to_raw(
    frame: pd.DataFrame, layout: Layout, keep_empty: frozenset[str] = frozenset()
) -> pd.DataFrame:
    """A wide file: one raw row per non-empty cell of the non-id/time columns (file order kept).

    Columns in ``keep_empty`` (names that are both static and variable) keep their empty cells
    too, so an empty static in a patient's first row is still seen as that patient's static.
    """
    value_columns = [c for c in frame.columns if c not in (layout.id_column, layout.time_column)]
    n_rows = len(frame)
    cells = frame[value_columns].to_numpy(dtype=object).ravel()  # row-major: file order
    present = pd.notna(cells) | np.tile(np.isin(value_columns, list(keep_empty)), n_rows)
    row = np.repeat(np.arange(n_rows), len(value_columns))[present]
    col = np.tile(np.arange(len(value_columns)), n_rows)[present]
    ids = strip(frame[layout.id_column])
    times = frame[layout.time_column].to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "patient_id": ids[row],
            "time": times[row],
            "variable": np.asarray(value_columns, dtype=object)[col],
            "value": cells[present],
            "line": _lines(frame)[row],
        }
    )


def to_raw(
    frame: pd.DataFrame, layout: Layout, keep_empty: frozenset[str] = frozenset()
) -> pd.DataFrame:
    if layout.format == "long":
        return long_to_raw(frame, layout)
    return wide_to_raw(frame, layout, keep_empty)
