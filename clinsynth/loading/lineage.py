"""The loader's side of lineage: take the marker column out of the file, recognise clinsynth-made
patients, and refuse to *train* on them beyond the allowed fraction (see ``clinsynth.lineage``).

Reading a synthetic cohort for an audit or an export is fine (``purpose="read"``): the lineage is
still detected and recorded, never refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd

from clinsynth.cohort import Cohort
from clinsynth.lineage import (
    MARKER_COLUMN,
    MARKERS_KEY,
    LineageReport,
    SyntheticDataRefused,
    check_allowance_value,
    detect_lineage,
    enforce_allowance,
)
from clinsynth.lineage.marker import markers_from_frame
from clinsynth.schema import Layout

Purpose = Literal["train", "read"]


def resolve_purpose(purpose: Purpose | None, enforce_window: bool, allowed: float) -> Purpose:
    """Default: a windowed load trains; ``enforce_window=False`` only reads (audits, tests)."""
    check_allowance_value(allowed)
    if purpose is None:
        return "train" if enforce_window else "read"
    if purpose not in ("train", "read"):
        raise ValueError(f"purpose must be 'train' or 'read', got {purpose!r}")
    return purpose


def split_markers(frame: pd.DataFrame, layout: Layout) -> tuple[pd.DataFrame, dict[str, str]]:
    """(the file without its ``clinsynth_run`` column, patient id → marker)."""
    if MARKER_COLUMN not in frame.columns:
        return frame, {}
    markers = markers_from_frame(frame, layout.id_column)
    return frame.drop(columns=MARKER_COLUMN), markers


def detect(cohort: Cohort, markers: dict[str, str]) -> LineageReport:
    """Lineage of a freshly loaded cohort: its file markers plus registry fingerprints."""
    cohort.provenance[MARKERS_KEY] = markers
    return detect_lineage(cohort)


def enforce(
    report: LineageReport, purpose: Purpose, allowed: float, path: Path, cleaning=None
) -> LineageReport:
    """Training refuses clinsynth-made patients beyond ``allowed``; reading only records them."""
    if purpose == "read":
        return report
    try:
        return enforce_allowance(report, allowed, f"Data file {path}")
    except SyntheticDataRefused as exc:
        exc.report = cleaning  # so `clinsynth validate` can still show what was cleaned
        raise
