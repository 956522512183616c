"""The ``clinsynth_run`` marker: a column on every row clinsynth writes for a synthetic cohort.

Value ``cs-<12 hex>:d<depth>``: the lineage id (a hash of the run id, so it names the run without
carrying dates or paths) and the generation depth (1 = trained on real data, 2 = trained on
depth-1 output, ...). A column on every row, rather than a header comment, survives what people
do with CSV files: copying, row filtering, concatenation and spreadsheet round trips.

In memory the markers live in ``cohort.provenance[MARKERS_KEY]`` (patient id → marker), kept
apart from the JSON-safe lineage summary so per-patient keys never reach a manifest.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clinsynth.cohort import Cohort

MARKER_COLUMN = "clinsynth_run"
MARKERS_KEY = "lineage_markers"
SUMMARY_KEY = "lineage"
_PATTERN = re.compile(r"^(cs-[0-9a-f]{12}):d(\d+)$")
UNKNOWN_ID = "cs-unrecognised"


@dataclass(frozen=True)
class Marker:
    """A parsed marker; ``well_formed`` is False for a value someone edited by hand."""

    lineage_id: str
    depth: int
    well_formed: bool = True

    def __str__(self) -> str:
        return make_marker(self.lineage_id, self.depth)


def lineage_id(run_id: str) -> str:
    """Short stable id of a run (or experiment step): ``cs-`` + 12 hex of its SHA-256."""
    return "cs-" + hashlib.sha256(str(run_id).encode()).hexdigest()[:12]


def make_marker(lineage: str, depth: int) -> str:
    if depth < 1:
        raise ValueError(f"a synthetic cohort has generation depth >= 1, got {depth}")
    return f"{lineage}:d{int(depth)}"


def parse_marker(text: object) -> Marker | None:
    """None for an empty cell; a malformed non-empty value still counts as synthetic (depth 1):
    clinsynth errs on the side of refusing rather than letting an edited marker through."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    value = str(text).strip()
    if not value:
        return None
    match = _PATTERN.match(value)
    if match is None:
        return Marker(UNKNOWN_ID, 1, well_formed=False)
    return Marker(match.group(1), int(match.group(2)))


def stamp(cohort: Cohort, marker: str) -> Cohort:
    """The same cohort with every patient carrying ``marker`` (the writer makes it a column)."""
    parse = parse_marker(marker)
    if parse is None or not parse.well_formed:
        raise ValueError(f"not a clinsynth marker: {marker!r}")
    provenance = {**cohort.provenance, MARKERS_KEY: dict.fromkeys(cohort.patient_ids, marker)}
    return Cohort(
        schema=cohort.schema,
        statics=cohort.statics,
        observations=cohort.observations,
        report=cohort.report,
        provenance=provenance,
    )


def cohort_markers(cohort: Cohort) -> dict[str, str]:
    """Markers of this cohort's own patients (provenance may be shared with a larger parent)."""
    markers = cohort.provenance.get(MARKERS_KEY) or {}
    return {pid: markers[pid] for pid in cohort.patient_ids if markers.get(pid)}


def markers_from_frame(frame: pd.DataFrame, id_column: str) -> dict[str, str]:
    """Per-patient marker from a file's ``clinsynth_run`` column (first non-empty row wins)."""
    if MARKER_COLUMN not in frame.columns or id_column not in frame.columns:
        return {}
    pairs = pd.DataFrame(
        {"id": frame[id_column].astype("string").str.strip(), "m": frame[MARKER_COLUMN]}
    )
    pairs["m"] = pairs["m"].astype("string").str.strip()
    pairs = pairs[pairs["id"].notna() & pairs["m"].notna() & (pairs["m"] != "")]
    first = pairs.drop_duplicates("id")
    return dict(zip(first["id"].astype(str), first["m"].astype(str), strict=True))


def marker_cells(patient_ids: np.ndarray, markers: dict[str, str]) -> np.ndarray:
    """The marker column for rows of these patients ("" for unmarked ones)."""
    return pd.Series(patient_ids, dtype=object).map(markers).fillna("").to_numpy(dtype=object)
