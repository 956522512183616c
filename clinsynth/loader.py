"""Load a real (or synthetic) cohort file into a validated ``Cohort``.

The loader reads long or wide CSV(.gz) in the schema's layout, converts times to hours since the
stay's start, cleans values rule by rule (every change counted in the ``CleaningReport``), and
enforces the 500..2,000 patient window. Rules, in order (details in the ``clinsynth.loading``
modules):

- rows without a patient id are dropped (``missing_id``);
- times that cannot be parsed or are negative: when more than 5% of rows are affected the file is
  refused (the schema's time format is probably wrong), otherwise those rows are dropped
  (``bad_time``);
- ``layout.ignore_variables`` rows/columns are dropped silently; other names the schema does not
  know are dropped, counted (``unknown_variable``) and listed in a note. We drop rather than refuse
  because exports from clinical systems carry administrative columns;
- values: sentinels, non-numbers, disallowed codes and values outside hard limits become missing
  (see ``clinsynth.loading.values``); a continuous/integer variable with *no* numeric value at all
  is refused (a wrong column mapping, not a few typos);
- statics (and outcomes kept in the main file): rows named after them, anywhere in the stay; a
  name that is also a variable (PhysioNet's ``Weight``) is static only in its first row at the
  patient's first time, later rows are observations. First non-missing value per patient wins,
  disagreements are counted (``static_conflict``); outcomes may instead come from a separate
  file keyed by the id column (``layout.outcomes_file``; patients without one: ``missing_outcome``);
- duplicate (patient, time, variable) observations: mean for continuous, last for the rest
  (``duplicate_collapsed``);
- patients with no observations left are dropped (``no_observations``);
- observations beyond the grid horizon are kept (the grid ignores them) and counted in a note.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pandas as pd

from clinsynth.cohort import CleaningReport, Cohort
from clinsynth.errors import ClinsynthError, CohortRefused
from clinsynth.io import sha256_file
from clinsynth.lineage import attach
from clinsynth.loading import lineage as lineage_check
from clinsynth.loading.duplicates import collapse_duplicates
from clinsynth.loading.outcomes import find_outcomes_file, read_outcomes
from clinsynth.loading.progress import stages
from clinsynth.loading.read import check_columns, read_table
from clinsynth.loading.reshape import to_raw
from clinsynth.loading.statics import first_values, static_row_mask
from clinsynth.loading.times import parse_times
from clinsynth.loading.values import ValueProblems, clean_values
from clinsynth.loading.window import check_subsample, check_window, subsample_ids
from clinsynth.schema import Schema, VariableType, load_schema

BAD_TIME_REFUSE_FRACTION = 0.05
_TIME_HELP = {
    "hours": "a number of hours since the stay's start, e.g. 12.5",
    "minutes": "a number of minutes since the stay's start, e.g. 750",
    "hhmm": "HH:MM since the stay's start, e.g. 36:15",
    "timestamp": "a date and time, e.g. 2101-03-04 12:30:00",
}


def expected_columns(schema: Schema) -> list[str]:
    """The header a file in ``schema``'s layout must have (wide: every field is a column)."""
    layout = schema.layout
    if layout.format == "long":
        return [layout.id_column, layout.time_column, layout.variable_column, layout.value_column]
    outcomes = [] if layout.outcomes_file else schema.outcome_names
    names = [*schema.static_names, *outcomes, *schema.variable_names]
    return [layout.id_column, layout.time_column, *dict.fromkeys(names)]


def _drop_bad_times(raw: pd.DataFrame, schema: Schema, path: Path, report: CleaningReport):
    hours, used = parse_times(raw["time"], schema.layout.time_format, raw["patient_id"])
    if used != schema.layout.time_format:
        report.notes.append(
            f"The {schema.layout.time_format} time column holds plain numbers: read as hours "
            "since the stay's start (how clinsynth writes such cohorts; it never invents dates)."
        )
    bad = np.isnan(hours) | (hours < 0)
    n_bad = int(bad.sum())
    if n_bad > BAD_TIME_REFUSE_FRACTION * len(raw):
        lines = ", ".join(str(x) for x in raw["line"].to_numpy()[bad][:5])
        raise ClinsynthError(
            f"Data file {path}: {n_bad:,} of {len(raw):,} rows ({n_bad / len(raw):.0%}) have a "
            f"time in column '{schema.layout.time_column}' that is missing, negative or not "
            f"{_TIME_HELP[schema.layout.time_format]} (first at lines {lines}). That is too many "
            "to drop: check the schema's layout.time_format and time_column."
        )
    report.add("bad_time", "*", n_bad)
    raw = raw.loc[~bad].drop(columns="time")
    raw["hours"] = hours[~bad]
    return raw


def _known_rows(
    raw: pd.DataFrame, schema: Schema, known: set[str], report: CleaningReport
) -> np.ndarray:
    """Mask of rows to keep: ignored names dropped silently, unknown names counted and listed."""
    names = raw["variable"].fillna("(empty)")
    ignored = names.isin(schema.layout.ignore_variables)
    unknown = ~names.isin(known) & ~ignored
    if unknown.any():
        counts = names[unknown].value_counts()
        for name, n in counts.items():
            report.add("unknown_variable", str(name), int(n))
        listed = []
        for name in counts.index[:20]:
            close = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.75)
            listed.append(f"{name} (did you mean {close[0]}?)" if close else str(name))
        more = f" and {len(counts) - 20} more" if len(counts) > 20 else ""
        report.notes.append(
            f"Dropped {int(unknown.sum()):,} values of names the schema does not know: "
            f"{', '.join(listed)}{more}. Add them to the schema (or to "
            "layout.ignore_variables) if they matter."
        )
    return (~ignored & ~unknown).to_numpy()


def _clean_all_values(
    raw: pd.DataFrame, is_static: np.ndarray, schema: Schema, path: Path, report: CleaningReport
) -> np.ndarray:
    values = np.full(len(raw), np.nan)
    lines = raw["line"].to_numpy()
    groups = pd.DataFrame({"v": raw["variable"].to_numpy(), "s": is_static}).groupby(
        ["v", "s"], sort=True
    )
    problems: dict[str, ValueProblems] = {}
    for (name, static), index in groups.indices.items():
        field = schema.field(name) if static else schema.variable(name)
        vals, found = clean_values(
            raw["value"].iloc[index], field, schema.layout.missing_sentinels, report, lines[index]
        )
        values[index] = vals
        if found.present:
            seen = problems.setdefault(name, ValueProblems())
            seen.present += found.present
            seen.non_numeric += found.non_numeric
            if found.first_non_numeric_line is not None:
                first = seen.first_non_numeric_line or found.first_non_numeric_line
                seen.first_non_numeric_line = min(first, found.first_non_numeric_line)
    wholly = [n for n, p in problems.items() if p.wholly_non_numeric]
    if wholly:
        where = (
            f"column '{schema.layout.value_column}'"
            if schema.layout.format == "long"
            else "its column"
        )
        raise ClinsynthError(
            f"Data file {path}: no value of {', '.join(wholly)} in {where} is a number "
            f"(first at line {problems[wholly[0]].first_non_numeric_line}), but the schema says "
            "it is numeric. Check the column mapping, or declare the field categorical."
        )
    for name, p in sorted(problems.items()):
        if p.non_numeric:
            report.notes.append(
                f"{name}: dropped {p.non_numeric:,} values that are not numbers "
                f"(first at line {p.first_non_numeric_line})."
            )
    return values


def _sorted_observations(obs: pd.DataFrame) -> pd.DataFrame:
    patient = pd.Categorical(obs["patient_id"])
    variable = pd.Categorical(obs["variable"])
    order = np.lexsort((variable.codes, obs["hours"].to_numpy(), patient.codes))
    return obs.iloc[order].reset_index(drop=True)


def _attach_outcomes(
    statics: pd.DataFrame,
    schema: Schema,
    data_path: Path,
    outcomes_path: Path | None,
    report: CleaningReport,
) -> tuple[pd.DataFrame, Path | None]:
    if not (schema.layout.outcomes_file and schema.outcomes):
        if outcomes_path is not None:
            raise ClinsynthError(
                f"Schema '{schema.name}' reads outcomes from the data file itself, but an "
                f"outcomes file ({outcomes_path}) was given. Drop --outcomes, or use a schema "
                "whose layout has outcomes_file: true."
            )
        return statics, None
    if outcomes_path is None:
        outcomes_path = find_outcomes_file(data_path)
        if outcomes_path is None:
            raise ClinsynthError(
                f"Schema '{schema.name}' takes outcomes ({', '.join(schema.outcome_names)}) "
                f"from a separate file keyed by '{schema.layout.id_column}', and none was found "
                f"beside {data_path} (looked for outcomes.csv or Outcomes*.txt). Pass it with "
                "--outcomes FILE."
            )
        report.notes.append(f"Outcomes read from {outcomes_path.name} found beside the data.")
    outcomes_path = Path(outcomes_path)
    outcomes = read_outcomes(outcomes_path, schema, report)
    unmatched = int((~outcomes.index.isin(statics.index)).sum())
    if unmatched:
        report.notes.append(
            f"Outcomes file: {unmatched:,} ids have no usable rows in the data file (ignored)."
        )
    statics = statics.drop(columns=schema.outcome_names).join(outcomes, how="left")
    return statics, outcomes_path


def _provenance(
    schema: Schema, data_path: Path, outcomes_path: Path | None, subsample: int | None, seed: int
) -> dict:
    def entry(p: Path) -> dict:
        return {"path": str(p.resolve()), "sha256": sha256_file(p)}

    return {
        "data": entry(data_path),
        "outcomes": entry(outcomes_path) if outcomes_path else None,
        "schema_name": schema.name,
        "schema_fingerprint": schema.fingerprint(),
        "subsample": subsample,
        "subsample_seed": seed if subsample is not None else None,
    }


def _split_rows(
    raw: pd.DataFrame, schema: Schema, path: Path, report: CleaningReport
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(static rows, observation rows) with cleaned values, unknown names dropped."""
    first_hours = raw.groupby("patient_id", sort=False)["hours"].transform("min").to_numpy()
    main_outcomes = [] if schema.layout.outcomes_file else schema.outcome_names
    static_names = {*schema.static_names, *main_outcomes}
    dual = set(schema.static_names) & set(schema.variable_names)
    keep = _known_rows(raw, schema, static_names | set(schema.variable_names), report)
    raw, first_hours = raw.loc[keep], first_hours[keep]
    is_static = static_row_mask(raw, first_hours, static_names - dual, dual)
    values = _clean_all_values(raw, is_static, schema, path, report)
    raw = raw.assign(value=values)
    statics = raw.loc[is_static, ["patient_id", "variable", "value"]]
    obs = raw.loc[~is_static & ~np.isnan(values), ["patient_id", "hours", "variable", "value"]]
    return statics, obs


def _collapse(obs: pd.DataFrame, schema: Schema, report: CleaningReport) -> pd.DataFrame:
    mean_vars = {v.name for v in schema.variables if v.type is VariableType.continuous}
    collapsed = collapse_duplicates(obs, mean_vars, report)
    if len(collapsed) < len(obs):
        report.notes.append(
            "Repeated (patient, time, variable) values were collapsed: mean for continuous "
            "variables, last value in file order for integer/binary/categorical ones."
        )
    return collapsed


def _patients(obs: pd.DataFrame, n_in_file: int, path: Path, report: CleaningReport) -> pd.Index:
    """Patients with at least one observation left (the others are dropped and counted)."""
    with_obs = pd.Index(np.sort(obs["patient_id"].unique()), name="patient_id")
    report.add("no_observations", "*", n_in_file - len(with_obs))
    if len(with_obs) == 0:
        top = ", ".join(f"{r} on {v}: {n:,}" for (r, v), n in report.counts.most_common(5))
        raise ClinsynthError(
            f"Data file {path}: no observations are left after cleaning "
            f"({top or 'no rows'}). Check the schema (names, sentinels, hard limits, "
            "time format) against the file with `clinsynth validate`."
        )
    return with_obs


def _note_horizon(obs: pd.DataFrame, schema: Schema, report: CleaningReport) -> None:
    beyond = int((obs["hours"] > schema.grid.horizon_hours).sum())
    if beyond:
        report.notes.append(
            f"{beyond:,} observations after the {schema.grid.horizon_hours:g} h grid horizon "
            "are kept in the cohort but not used by the generator."
        )


def _window(cohort: Cohort, subsample: int | None, seed: int, enforce: bool, path: Path) -> Cohort:
    """Refuse or subsample by patient count (see ``clinsynth.loading.window``)."""
    n, report = cohort.n_patients, cohort.report
    if enforce:
        try:
            check_window(n, subsample, f"Data file {path}")
        except CohortRefused as exc:
            exc.report = report  # so `clinsynth validate` can still show what was cleaned
            raise
    if subsample is not None and n > subsample:
        report.notes.append(
            f"Subsampled {subsample:,} of {n:,} patients (seed {seed}); the cleaning counts "
            "above refer to the whole file."
        )
        return cohort.subset(subsample_ids(cohort.patient_ids, subsample, seed))
    if subsample is not None:
        report.notes.append(f"--subsample {subsample}: the cohort has {n:,}, all kept.")
    return cohort


def load_cohort(
    data_path: str | Path,
    schema: Schema | str | Path,
    outcomes_path: str | Path | None = None,
    subsample: int | None = None,
    seed: int = 0,
    enforce_window: bool = True,
    progress: bool = True,
    *,
    purpose: lineage_check.Purpose | None = None,
    allow_synthetic_fraction: float = 0.0,
) -> Cohort:
    """Read, clean and window a cohort file (rules in the module docstring).

    ``subsample`` (500..2,000) draws that many patients with ``numpy.random.default_rng(seed)``
    when the cleaned cohort is larger; it is recorded in ``provenance`` and a report note.
    ``enforce_window=False`` skips the patient-count window (synthetic cohorts, tests).
    When the schema wants an outcomes file and ``outcomes_path`` is None, the single
    ``outcomes.csv(.gz)`` or ``Outcomes*.txt`` beside the data is used (and noted).

    Lineage (``clinsynth.lineage``): clinsynth-made patients are recognised by the
    ``clinsynth_run`` column or by fingerprint in the export registry and recorded in
    ``provenance["lineage"]``. ``purpose="train"`` (the default when ``enforce_window``) refuses
    the cohort (``SyntheticDataRefused``) when they exceed ``allow_synthetic_fraction``;
    ``purpose="read"`` (the default otherwise: audits, exports) never refuses.
    """
    schema = schema if isinstance(schema, Schema) else load_schema(schema)
    data_path = Path(data_path)
    outcomes_path = Path(outcomes_path) if outcomes_path is not None else None
    if enforce_window:
        check_subsample(subsample)
    purpose = lineage_check.resolve_purpose(purpose, enforce_window, allow_synthetic_fraction)
    report = CleaningReport()
    with stages(progress, 5) as stage:
        stage.next(f"reading {data_path.name}")
        frame = read_table(data_path)
        check_columns(frame, expected_columns(schema), data_path)
        frame, markers = lineage_check.split_markers(frame, schema.layout)
        dual = frozenset(schema.static_names) & frozenset(schema.variable_names)
        raw = to_raw(frame, schema.layout, keep_empty=dual)
        del frame

        stage.next("parsing times")
        no_id = raw["patient_id"].isna() | (raw["patient_id"] == "")
        report.add("missing_id", "*", int(no_id.sum()))
        raw = raw.loc[~no_id]
        n_in_file = raw["patient_id"].nunique()
        raw = _drop_bad_times(raw, schema, data_path, report)

        stage.next("cleaning values")
        statics_raw, obs = _split_rows(raw, schema, data_path, report)
        del raw

        stage.next("collapsing duplicates")
        obs = _collapse(obs, schema, report)

        stage.next("checking patients")
        patients = _patients(obs, n_in_file, data_path, report)
        main_names = [
            *schema.static_names,
            *([] if schema.layout.outcomes_file else schema.outcome_names),
        ]
        statics = first_values(statics_raw, main_names, report).reindex(patients)
        statics = statics.reindex(columns=[*schema.static_names, *schema.outcome_names])
        statics, outcomes_used = _attach_outcomes(statics, schema, data_path, outcomes_path, report)
        for name in schema.outcome_names:
            report.add("missing_outcome", name, int(statics[name].isna().sum()))
        _note_horizon(obs, schema, report)
        obs = _sorted_observations(obs)

    cohort = Cohort(schema=schema, statics=statics, observations=obs, report=report)
    lineage = lineage_check.detect(cohort, markers)
    # checked on the whole file first (clearer than a window refusal for a small export) and
    # again on what is kept: a subsample can change the fraction
    lineage_check.enforce(lineage, purpose, allow_synthetic_fraction, data_path, report)
    provenance = _provenance(schema, data_path, outcomes_used, subsample, seed)
    provenance["n_patients"] = {"in_file": n_in_file, "after_cleaning": cohort.n_patients}
    cohort = _window(cohort, subsample, seed, enforce_window, data_path)
    lineage = lineage.restrict(cohort.patient_ids)
    lineage_check.enforce(lineage, purpose, allow_synthetic_fraction, data_path, report)
    provenance["n_patients"]["loaded"] = cohort.n_patients
    cohort.provenance = provenance
    attach(cohort, lineage)
    return cohort
