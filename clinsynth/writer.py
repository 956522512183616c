"""Write a cohort back in its schema's file layout, so ``load_cohort(write_cohort(c))`` gives ``c``.

Conventions (mirroring the loader's rules):

- Times are written in the schema's ``time_format``; a ``timestamp`` layout gets plain hour
  offsets in its time column (clinsynth never invents dates; the loader reads numbers there as
  hours). ``hhmm`` is rounded to the minute, ``minutes`` to 1e-6 minute.
- Statics (and outcomes kept in the main file) are written at hour 0, before the patient's
  observations: long files get one row per static, wide files repeat them on every row. A name
  that is both a static and a variable (PhysioNet's ``Weight``) gets its static in the patient's
  first row at hour 0, written even when empty so a later measurement is never mistaken for it.
- Values: categorical codes become the raw category, binary 0/1, numbers are rounded to the
  field's ``precision`` when it has one and otherwise written exactly; missing is an empty cell.
- Outcomes go to a separate file keyed by the id column when ``layout.outcomes_file``.
- Lineage: when the cohort carries clinsynth markers (``clinsynth.lineage``), every row of every
  file gets a last column ``clinsynth_run`` (empty for unmarked patients), so the output stays
  recognisable wherever it is copied; the loader takes that column out again.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from clinsynth.cohort import Cohort
from clinsynth.io import atomic_path
from clinsynth.schema import BaseField, Schema, VariableType


def format_numbers(values: np.ndarray, precision: int | None = None) -> np.ndarray:
    """Shortest exact text for each float ("73", "92.33"); empty string for NaN."""
    values = np.asarray(values, dtype=float)
    if precision is not None:
        values = np.round(values, precision)
    out = np.full(values.shape, "", dtype=object)
    finite = np.isfinite(values)
    whole = finite & (values == np.round(values)) & (np.abs(values) < 1e15)
    out[whole] = values[whole].astype(np.int64).astype(str)
    rest = finite & ~whole
    out[rest] = values[rest].astype(str)
    return out


def format_values(values: np.ndarray, field: BaseField) -> np.ndarray:
    """Cohort-coded values of ``field`` → the text the schema's file layout uses."""
    values = np.asarray(values, dtype=float)
    if field.type is VariableType.categorical:
        categories = np.array([str(c) for c in field.categories or []] + [""], dtype=object)
        n = len(categories) - 1
        valid = np.isfinite(values) & (values == np.round(values)) & (values >= 0) & (values < n)
        codes = np.where(valid, values, n).astype(int)  # anything else → "" (missing)
        return categories[codes]
    if field.type is VariableType.binary:
        return format_numbers(values)
    return format_numbers(values, field.precision)


def format_times(hours: np.ndarray, time_format: str) -> np.ndarray:
    """Hours since the stay's start → text in ``time_format`` (hour offsets for timestamps)."""
    codes, uniques = pd.factorize(np.asarray(hours, dtype=float))
    uniques = np.asarray(uniques, dtype=float)
    if time_format == "hhmm":
        minutes = np.round(uniques * 60).astype(np.int64)
        text = np.array([f"{m // 60:02d}:{m % 60:02d}" for m in minutes], dtype=object)
    elif time_format == "minutes":
        text = format_numbers(np.round(uniques * 60, 6))
    else:  # hours, and timestamp layouts as hour offsets
        text = format_numbers(uniques)
    return text[codes] if len(text) else np.array([], dtype=object)


def _main_statics(schema: Schema) -> list[BaseField]:
    outcomes = [] if schema.layout.outcomes_file else schema.outcomes
    return [*schema.statics, *outcomes]


def _dual_names(schema: Schema) -> set[str]:
    return set(schema.static_names) & set(schema.variable_names)


def _formatted_observations(cohort: Cohort) -> pd.DataFrame:
    obs = cohort.observations
    text = np.empty(len(obs), dtype=object)
    for name, index in obs.groupby("variable", sort=False).indices.items():
        text[index] = format_values(obs["value"].to_numpy()[index], cohort.schema.variable(name))
    return obs.assign(text=text)


def _long_frame(cohort: Cohort) -> pd.DataFrame:
    schema, layout = cohort.schema, cohort.schema.layout
    dual = _dual_names(schema)
    static_rows = []
    for field in _main_statics(schema):
        text = format_values(cohort.statics[field.name].to_numpy(), field)
        keep = (text != "") | (field.name in dual)
        ids = cohort.statics.index.to_numpy()[keep]
        static_rows.append(
            pd.DataFrame({"patient_id": ids, "variable": field.name, "text": text[keep]})
        )
    statics = pd.concat(static_rows, ignore_index=True) if static_rows else None
    if statics is not None:
        statics["hours"] = 0.0
    obs = _formatted_observations(cohort)
    rows = pd.concat([statics, obs], ignore_index=True) if statics is not None else obs
    patient = pd.Categorical(rows["patient_id"], categories=cohort.patient_ids)
    rows = rows.iloc[np.argsort(patient.codes, kind="stable")]
    return pd.DataFrame(
        {
            layout.id_column: rows["patient_id"].to_numpy(),
            layout.time_column: format_times(rows["hours"].to_numpy(), layout.time_format),
            layout.variable_column: rows["variable"].to_numpy(),
            layout.value_column: rows["text"].to_numpy(),
        }
    )


def _wide_frame(cohort: Cohort) -> pd.DataFrame:
    schema, layout = cohort.schema, cohort.schema.layout
    dual = sorted(_dual_names(schema))
    obs = _formatted_observations(cohort)
    cells = obs.groupby(["patient_id", "hours", "variable"], sort=False)["text"].last()
    table = cells.unstack("variable").reset_index()
    table["_order"] = 1
    # the statics row at hour 0: merged into an existing hour-0 row unless that row already
    # holds a measurement of a static+variable name (then it goes first, as its own row)
    zero = table["hours"] == 0.0
    clash = zero & table.reindex(columns=dual).notna().any(axis=1) if dual else zero & False
    merge_ids = set(table.loc[zero & ~clash, "patient_id"])
    own_row = [p for p in cohort.patient_ids if p not in merge_ids]
    header = pd.DataFrame({"patient_id": own_row, "hours": 0.0, "_order": 0})
    table = pd.concat([header, table], ignore_index=True)
    first_row = (table["hours"] == 0.0) & (
        (table["_order"] == 0) | table["patient_id"].isin(merge_ids)
    )
    for field in _main_statics(schema):
        text = pd.Series(format_values(cohort.statics[field.name].to_numpy(), field))
        text.index = cohort.statics.index
        per_row = table["patient_id"].map(text).to_numpy()
        if field.name in dual:
            table.loc[first_row, field.name] = per_row[first_row.to_numpy()]
        else:
            table[field.name] = per_row
    patient = pd.Categorical(table["patient_id"], categories=cohort.patient_ids)
    order = np.lexsort((table["hours"].to_numpy(), table["_order"].to_numpy(), patient.codes))
    table = table.iloc[order]
    names = [f.name for f in _main_statics(schema)] + schema.variable_names
    body = table.reindex(columns=list(dict.fromkeys(names))).fillna("")
    body.insert(0, layout.time_column, format_times(table["hours"].to_numpy(), layout.time_format))
    body.insert(0, layout.id_column, table["patient_id"].to_numpy())
    return body


def _outcomes_frame(cohort: Cohort) -> pd.DataFrame:
    frame = pd.DataFrame({cohort.schema.layout.id_column: cohort.statics.index.to_numpy()})
    for field in cohort.schema.outcomes:
        frame[field.name] = format_values(cohort.statics[field.name].to_numpy(), field)
    return frame


def _with_markers(frame: pd.DataFrame, cohort: Cohort) -> pd.DataFrame:
    """Append the ``clinsynth_run`` column when any patient of ``cohort`` carries a marker."""
    # imported here: clinsynth.lineage fingerprints patients with this module's formatting
    from clinsynth.lineage.marker import MARKER_COLUMN, cohort_markers, marker_cells

    markers = cohort_markers(cohort)
    if not markers:
        return frame
    ids = frame[cohort.schema.layout.id_column].to_numpy(dtype=object)
    return frame.assign(**{MARKER_COLUMN: marker_cells(ids, markers)})


def _write_csv(frame: pd.DataFrame, target: Path) -> None:
    with atomic_path(target) as tmp:
        if target.name.endswith(".gz"):
            # mtime=0: the same cohort always gives the same bytes (reproducible hashes)
            with (
                open(tmp, "wb") as raw,
                gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz,
            ):
                gz.write(frame.to_csv(index=False).encode())
        else:
            frame.to_csv(tmp, index=False)


def write_cohort(
    cohort: Cohort,
    directory: str | Path,
    *,
    main_name: str = "cohort.csv",
    outcomes_name: str = "outcomes.csv",
) -> list[Path]:
    """Write ``cohort`` into ``directory`` in its schema's layout; returns the files written.

    ``main_name`` ending in ``.gz`` is gzip-compressed. Files are written atomically.
    """
    directory = Path(directory)
    schema = cohort.schema
    frame = _long_frame(cohort) if schema.layout.format == "long" else _wide_frame(cohort)
    written = [directory / main_name]
    _write_csv(_with_markers(frame, cohort), written[0])
    if schema.layout.outcomes_file and schema.outcomes:
        written.append(directory / outcomes_name)
        _write_csv(_with_markers(_outcomes_frame(cohort), cohort), written[1])
    return written
