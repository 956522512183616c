"""What is known of a file's origin, for ``clinsynth lineage FILE``.

With a schema (given, or found in a clinsynth manifest beside the file) the file is read like
any cohort and every patient is checked (marker, then registry fingerprint). Without one, only
the marker column and the file's hash can be checked, and the result says so.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from clinsynth.errors import ClinsynthError
from clinsynth.io import sha256_file
from clinsynth.lineage.detect import LineageReport, detect_lineage
from clinsynth.lineage.marker import MARKER_COLUMN, parse_marker
from clinsynth.lineage.registry import Registry, RegistryEntry, read_registry
from clinsynth.schema import Schema, load_schema, parse_schema

NOT_FOUND = "no clinsynth lineage found"


@dataclass
class FileLineage:
    """The answer for one file; ``report`` is None when no schema was available."""

    path: Path
    registry: Registry
    schema_name: str | None = None
    schema_source: str | None = None
    report: LineageReport | None = None
    file_match: RegistryEntry | None = None
    marker_rows: Counter = field(default_factory=Counter)  # marker → rows (schema-less scan)
    n_rows: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        report_found = self.report is not None and self.report.found
        return report_found or self.file_match is not None or bool(self.marker_rows)


def _schema_beside(path: Path) -> tuple[Schema, str] | None:
    """The schema recorded in a clinsynth manifest next to the file (exports, run folders)."""
    for folder in (path.parent, path.parent.parent):
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            continue
        try:
            data = json.loads(manifest.read_text())
            raw = data.get("schema") or (data.get("input") or {}).get("schema")
            if isinstance(raw, dict):
                return parse_schema(raw, str(manifest)), f"recorded in {manifest}"
        except (ValueError, ClinsynthError):
            continue
    return None


def _without_outcomes_file(schema: Schema) -> Schema:
    """Fingerprints ignore outcomes: a copy that needs no outcomes file to read the data."""
    layout = schema.layout.model_copy(update={"outcomes_file": False})
    return schema.model_copy(update={"layout": layout, "outcomes": []})


def _scan_markers(path: Path) -> tuple[Counter, int]:
    from clinsynth.loading.read import read_table

    frame = read_table(path)
    if MARKER_COLUMN not in frame.columns:
        return Counter(), len(frame)
    parsed = [parse_marker(v) for v in frame[MARKER_COLUMN].tolist()]
    return Counter(str(m) if m.well_formed else m.lineage_id for m in parsed if m), len(frame)


def inspect_file(
    path: str | Path,
    schema: Schema | str | Path | None = None,
    outcomes_path: str | Path | None = None,
) -> FileLineage:
    """Everything clinsynth can tell about where ``path`` came from."""
    from clinsynth.loading.outcomes import find_outcomes_file

    path = Path(path)
    if not path.is_file():
        raise ClinsynthError(f"{path} does not exist or is not a file.")
    registry = read_registry()
    out = FileLineage(path=path, registry=registry)
    if schema is not None:
        schema_obj = schema if isinstance(schema, Schema) else load_schema(schema)
        out.schema_source = "given with --schema"
    else:
        beside = _schema_beside(path)
        schema_obj, out.schema_source = beside if beside else (None, None)
    if schema_obj is None:
        out.file_match = registry.match_file_hash(sha256_file(path)) if registry else None
        out.marker_rows, out.n_rows = _scan_markers(path)
        out.notes.append(
            "No schema given (and no clinsynth manifest beside the file): only the "
            f"{MARKER_COLUMN} column and the file's hash were checked. Pass --schema NAME to "
            "check every patient's content fingerprint against the export registry too."
        )
        return out
    if (
        schema_obj.layout.outcomes_file
        and outcomes_path is None
        and find_outcomes_file(path) is None
    ):
        schema_obj = _without_outcomes_file(schema_obj)
    out.schema_name = schema_obj.name
    out.report = detect_lineage(path, schema_obj, outcomes_path, registry=registry)
    out.file_match = out.report.file_matches[0] if out.report.file_matches else None
    if not registry:
        out.notes.append(
            f"The export registry ({registry.path}) is empty or absent on this machine: only "
            f"the {MARKER_COLUMN} column could be checked."
        )
    if registry.unreadable_lines:
        out.notes.append(
            f"{registry.unreadable_lines} line(s) of the registry {registry.path} could not be "
            "read and were skipped."
        )
    return out
