"""Draft a schema from a data file for an analyst (and a clinician) to finish.

The draft detects what the file *says* — layout, id/time columns, time format, names, a guessed
type per name, which names look static — but never what a clinician must decide: ranges. Copying
observed minima/maxima into the schema would leak real values into a public file and turn the
schema's "public" scaling ranges into unpaid statistics of the data. So continuous and integer
fields get ``hard_limits: [TODO_low, TODO_high]`` placeholders and ``inferred: true``, and
``load_schema`` refuses the draft until every TODO is replaced by a clinically sourced value.
Observed ranges are returned separately (``FieldDraft.observed``) for the CLI to *print* only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from clinsynth.errors import ClinsynthError
from clinsynth.loading.read import check_columns, read_table

SENTINEL_CANDIDATES = (-1.0, -9.0, -99.0, -999.0, -9999.0, 999.0, 9999.0, 99999.0)
MAX_CATEGORIES = 20
MIN_CATEGORY_PATIENTS = 5  # rarer category values are left out of the draft (could identify)
_ID_HINTS = ("recordid", "patientid", "subjectid", "stayid", "icustayid", "hadmid", "id")
_TIME_HINTS = ("time", "hour", "minute", "offset", "timestamp", "date")
_OUTCOME_HINT = re.compile(r"death|mortal|died|expire|outcome|surviv", re.IGNORECASE)
_HHMM = re.compile(r"^\s*\d+:[0-5]\d(:[0-5]\d)?\s*$")


@dataclass
class FieldDraft:
    """One name found in the file, with a guessed role and type."""

    name: str
    kind: str  # "static", "variable", "both", "outcome" or "text" (ignored)
    type: str
    n_patients: int
    categories: list = field(default_factory=list)
    rare_categories: int = 0
    precision: int | None = None
    observed: tuple[float, float] | None = None  # for the terminal only, never written


@dataclass
class SchemaDraft:
    """Everything ``draft_yaml`` needs, plus what the CLI prints for review."""

    layout: dict
    fields: list[FieldDraft]
    sentinels: list[float]
    n_patients: int
    n_rows: int


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _guess_column(columns: list[str], hints: tuple[str, ...], exclude: set[str]) -> str | None:
    for hint in hints:
        for column in columns:
            if column not in exclude and hint in _norm(column):
                return column
    return None


def _numeric(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.str.strip(), errors="coerce")


def _time_format(values: pd.Series, column: str) -> str:
    sample = values.dropna().head(5000)
    if sample.empty:
        raise ClinsynthError(f"The time column '{column}' is empty; pass --time-column.")
    if sample.str.match(_HHMM).mean() > 0.95:
        return "hhmm"
    if _numeric(sample).notna().mean() > 0.95:
        return "minutes" if "min" in column.lower() else "hours"
    stamps = pd.to_datetime(sample, errors="coerce", format="mixed")
    if stamps.notna().mean() > 0.95:
        return "timestamp"
    raise ClinsynthError(
        f"The values of column '{column}' are not hours, minutes, HH:MM or timestamps. If the "
        "time is in another column, pass --time-column NAME."
    )


def _guess_layout(frame: pd.DataFrame, rest: list[str]) -> tuple[str, str | None, str | None]:
    """("long", variable column, value column) or ("wide", None, None)."""
    if len(rest) == 2:
        share = {c: _numeric(frame[c].dropna().head(5000)).notna().mean() for c in rest}
        names, values = sorted(rest, key=lambda c: share[c])
        if share[names] < 0.5 and frame[names].nunique() <= 1000:
            return "long", names, values
    return "wide", None, None


def _long_pieces(frame: pd.DataFrame, layout: dict) -> pd.DataFrame:
    """(pid, order, name, value) rows from either layout, in file order."""
    pid, time = frame[layout["id_column"]], frame[layout["time_column"]]
    order = time.map(_time_key(time, layout["time_format"]))
    if layout["format"] == "long":
        return pd.DataFrame(
            {
                "pid": pid,
                "order": order,
                "name": frame[layout["variable_column"]].str.strip(),
                "value": frame[layout["value_column"]],
            }
        )
    rest = [c for c in frame.columns if c not in (layout["id_column"], layout["time_column"])]
    melted = frame.assign(order=order).melt(
        id_vars=[layout["id_column"], "order"], value_vars=rest, var_name="name"
    )
    melted = melted.rename(columns={layout["id_column"]: "pid"}).dropna(subset=["value"])
    return melted[["pid", "order", "name", "value"]]


def _time_key(time: pd.Series, fmt: str) -> dict:
    """Distinct time text → a sortable number (only the order within a patient matters)."""
    uniques = pd.Series(time.dropna().unique())
    if fmt == "hhmm":
        parts = uniques.str.strip().str.split(":", expand=True).astype(float)
        keys = parts[0] * 60 + parts[1]
    elif fmt == "timestamp":
        stamps = pd.to_datetime(uniques, errors="coerce", format="mixed")
        keys = (stamps - stamps.min()).dt.total_seconds()
    else:
        keys = _numeric(uniques)
    return dict(zip(uniques, keys, strict=True))


def _sentinels(pieces: pd.DataFrame, numbers: pd.Series) -> list[float]:
    """Sentinel-looking codes used by at least two names (e.g. PhysioNet's -1)."""
    found = []
    for code in SENTINEL_CANDIDATES:
        names = pieces.loc[numbers == code, "name"].nunique()
        if names >= 2:
            found.append(code)
    return found


def _decimals(values: pd.Series) -> int:
    text = values.dropna().astype(str).str.strip().head(20000)
    decimals = pd.to_numeric(text.str.extract(r"\.(\d+)$")[0].str.len(), errors="coerce")
    decimals = decimals.fillna(0)
    return int(min(decimals.max() if len(decimals) else 0, 4))


def _draft_field(name: str, rows: pd.DataFrame, numbers: pd.Series, kind: str) -> FieldDraft:
    n_patients = rows["pid"].nunique()
    present = numbers.notna()
    if present.mean() < 0.5:  # mostly text
        text = rows["value"].str.strip()
        counts = rows.assign(t=text).groupby("t")["pid"].nunique()
        if len(counts) > MAX_CATEGORIES:
            return FieldDraft(name, "text", "text", n_patients)
        common = sorted(counts[counts >= MIN_CATEGORY_PATIENTS].index)
        draft = FieldDraft(name, kind, "categorical", n_patients, categories=common)
        draft.rare_categories = int((counts < MIN_CATEGORY_PATIENTS).sum())
        return draft
    values = numbers[present]
    observed = (float(values.min()), float(values.max()))
    distinct = np.unique(values.to_numpy())
    if set(distinct) <= {0.0, 1.0}:
        return FieldDraft(name, kind, "binary", n_patients)
    whole = bool(np.all(distinct == np.round(distinct)))
    if whole and len(distinct) <= MAX_CATEGORIES:
        return FieldDraft(name, kind, "integer", n_patients, observed=observed)
    precision = _decimals(rows["value"][present])
    return FieldDraft(name, kind, "continuous", n_patients, precision=precision, observed=observed)


def _roles(pieces: pd.DataFrame) -> dict[str, str]:
    """static (once, at the patient's first time), both (also later), or variable."""
    first = pieces.groupby("pid")["order"].transform("min")
    at_start = pieces["order"] == first
    per_name = pieces.assign(start=at_start).groupby("name")
    n_patients = pieces["pid"].nunique()
    roles = {}
    for name, rows in per_name:
        start_rows = rows[rows["start"]]
        once = not start_rows["pid"].duplicated().any()
        mostly_at_start = start_rows["pid"].nunique() >= 0.9 * rows["pid"].nunique()
        covers = rows["pid"].nunique() >= 0.5 * n_patients
        if once and mostly_at_start and covers:
            roles[name] = "static" if len(start_rows) == len(rows) else "both"
        else:
            roles[name] = "variable"
    return roles


def _wide_roles(pieces: pd.DataFrame) -> dict[str, str]:
    """Wide files: a column constant within every patient is static."""
    varying = pieces.groupby(["name", "pid"])["value"].nunique().groupby("name").max()
    return {name: "static" if n <= 1 else "variable" for name, n in varying.items()}


def infer_schema(
    path: str | Path,
    layout: str | None = None,
    id_column: str | None = None,
    time_column: str | None = None,
) -> SchemaDraft:
    """Detect layout, columns, names, roles and types in ``path`` (see module docstring)."""
    frame = read_table(path)
    columns = list(frame.columns)
    given = [c for c in (id_column, time_column) if c]
    check_columns(frame, given, path)
    id_column = id_column or _guess_column(columns, _ID_HINTS, set()) or columns[0]
    rest = [c for c in columns if c != id_column]
    time_column = time_column or _guess_column(rest, _TIME_HINTS, set()) or (rest or [None])[0]
    if time_column is None or time_column == id_column:
        raise ClinsynthError(f"{path} needs at least an id and a time column.")
    rest = [c for c in rest if c != time_column]
    fmt = _time_format(frame[time_column], time_column)
    detected, var_col, val_col = _guess_layout(frame, rest)
    if layout == "long" and detected != "long":
        if len(rest) != 2:
            raise ClinsynthError(
                f"A long file has exactly 4 columns (id, time, variable, value); {path} has "
                f"{len(columns)}: {', '.join(columns)}."
            )
        var_col, val_col = rest
    spec = {"format": layout or detected, "id_column": id_column, "time_column": time_column}
    spec["time_format"] = fmt
    if spec["format"] == "long":
        spec |= {"variable_column": var_col, "value_column": val_col}
    frame[id_column] = frame[id_column].str.strip()
    pieces = _long_pieces(frame, spec).dropna(subset=["pid", "name"])
    numbers = _numeric(pieces["value"].astype(str))
    sentinels = _sentinels(pieces, numbers)
    numbers = numbers.where(~numbers.isin(sentinels))
    roles = _wide_roles(pieces) if spec["format"] == "wide" else _roles(pieces)
    fields = []
    for name, index in pieces.groupby("name", sort=False).indices.items():
        if name == id_column:  # an id echo row (PhysioNet's RecordID descriptor)
            fields.append(FieldDraft(str(name), "text", "text", 0))
            continue
        kind = roles.get(name, "variable")
        draft = _draft_field(str(name), pieces.iloc[index], numbers.iloc[index], kind)
        if draft.type == "binary" and kind == "static" and _OUTCOME_HINT.search(str(name)):
            draft.kind = "outcome"
        fields.append(draft)
    return SchemaDraft(spec, fields, sentinels, int(pieces["pid"].nunique()), len(frame))


# ------------------------------------------------------------------------------------ rendering

HEADER = """\
# DRAFT schema written by `clinsynth schema infer` from {source}.
#
# This draft is deliberately NOT loadable yet: every `TODO_...` placeholder must be replaced
# first, and clinsynth refuses the file while any remain.
#  - hard_limits (physiologically impossible outside) and normal_range must come from clinical
#    sources (textbooks, guidelines, your lab's reference intervals), reviewed by a clinician.
#    They are never copied from the data: ranges in a schema are public, and the data's own
#    minima/maxima would leak real patients' values (the terminal showed them for review only).
#  - check every guessed type (binary / integer / categorical / continuous), unit and role
#    (statics, outcomes, variables), then delete `inferred: true` once a field is reviewed.
#  - categories were taken from values seen for at least {min_cat} patients; add any missing
#    codes from the data dictionary rather than from rare values in the data.
"""


def _q(value) -> str:
    """A YAML scalar (JSON strings and numbers are valid YAML)."""
    return json.dumps(value)


def _field_lines(f: FieldDraft, as_variable: bool = False) -> list[str]:
    ftype = "continuous" if f.type == "text" else f.type
    lines = [f"  - name: {_q(f.name)}", f"    type: {ftype}", "    inferred: true"]
    lines.append('    unit: ""  # TODO: unit (not needed to load)')
    if ftype == "categorical":
        lines.append(f"    categories: [{', '.join(_q(c) for c in f.categories)}]")
        if f.rare_categories:
            lines.append(f"    # {f.rare_categories} rare value(s) left out: check the dictionary")
    if ftype in ("continuous", "integer"):
        lines.append("    hard_limits: [TODO_low, TODO_high]  # clinically sourced")
        lines.append("    # normal_range: [TODO_low, TODO_high]  # optional reference range")
    if f.precision is not None:
        lines.append(f"    precision: {f.precision}")
    if as_variable:
        lines.append("    # group: vital | lab | intervention | other")
    return lines


def draft_yaml(draft: SchemaDraft, name: str, source: str) -> str:
    """The draft as commented YAML text (with TODO placeholders, see module docstring)."""
    out = [HEADER.format(source=source, min_cat=MIN_CATEGORY_PATIENTS)]
    out += [f"name: {_q(name)}", 'version: "1"', "description: TODO describe the cohort", ""]
    out.append("layout:")
    out += [f"  {k}: {_q(v)}" for k, v in draft.layout.items()]
    sentinels = ", ".join(f"{s:g}" for s in draft.sentinels)
    note = "  # TODO confirm: codes seen in several variables" if draft.sentinels else ""
    out.append(f"  missing_sentinels: [{sentinels}]{note}")
    text = [f.name for f in draft.fields if f.kind == "text"]
    out.append(f"  ignore_variables: [{', '.join(_q(t) for t in text)}]  # free text / admin")
    out.append("  outcomes_file: false  # true if outcomes come in a separate file keyed by id")
    out += ["", "grid:", "  step_hours: 1.0", "  horizon_hours: 48.0  # TODO confirm", ""]
    groups = {
        "statics": [f for f in draft.fields if f.kind in ("static", "both")],
        "outcomes": [f for f in draft.fields if f.kind == "outcome"],
        "variables": [f for f in draft.fields if f.kind in ("variable", "both")],
    }
    for group, fields in groups.items():
        if not fields:
            hint = "  # TODO: move outcome fields here" if group == "outcomes" else ""
            out += [f"{group}: []{hint}", ""]
            continue
        out.append(f"{group}:")
        for f in fields:
            out += _field_lines(f, as_variable=group == "variables")
        out.append("")
    return "\n".join(out)
