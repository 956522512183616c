"""Outcomes from a separate file keyed by the id column (PhysioNet's ``Outcomes-a.txt``).

Extra columns (SAPS-I, SOFA, survival days...) are ignored and named in the report note: only the
schema's outcomes ever reach the cohort. Repeated ids keep their first row (counted).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from clinsynth.cohort import CleaningReport
from clinsynth.errors import ClinsynthError
from clinsynth.lineage.marker import MARKER_COLUMN
from clinsynth.loading.read import check_columns, read_table
from clinsynth.loading.values import clean_values
from clinsynth.schema import Schema

DEFAULT_NAMES = ("outcomes.csv", "outcomes.csv.gz")


def find_outcomes_file(data_path: Path) -> Path | None:
    """The one outcomes file beside the data (``outcomes.csv`` or ``Outcomes-*.txt``), if unique."""
    folder = data_path.parent
    found = [folder / n for n in DEFAULT_NAMES if (folder / n).is_file()]
    found += sorted(folder.glob("Outcomes*.txt"))
    return found[0] if len(found) == 1 else None


def read_outcomes(path: Path, schema: Schema, report: CleaningReport) -> pd.DataFrame:
    """Per-patient outcome table (index patient_id, one float column per schema outcome)."""
    id_column = schema.layout.id_column
    names = schema.outcome_names
    frame = read_table(path, "Outcomes file")
    check_columns(frame, [id_column, *names], path, "Outcomes file")
    # the lineage marker is read from the main file; here it is expected, not "extra"
    extra = [c for c in frame.columns if c not in (id_column, *names, MARKER_COLUMN)]
    if extra:
        report.notes.append(
            f"Outcomes file: ignored columns not in the schema: {', '.join(extra)}."
        )
    ids = frame[id_column].str.strip()
    if ids.isna().all():
        raise ClinsynthError(f"Outcomes file {path}: the column '{id_column}' is empty.")
    repeated = ids.duplicated() & ids.notna()
    report.add("duplicate_outcome_row", "*", int(repeated.sum()))
    keep = ~repeated & ids.notna()
    table = pd.DataFrame(index=pd.Index(ids[keep], name="patient_id"))
    for name in names:
        values, _ = clean_values(
            frame.loc[keep, name], schema.field(name), schema.layout.missing_sentinels, report
        )
        table[name] = values
    return table
