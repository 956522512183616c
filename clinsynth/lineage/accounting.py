"""Lineage bookkeeping for the two places clinsynth produces synthetic data: runs and exports.

- A run (``generate``) records in its manifest how much of its training data was clinsynth-made,
  under which allowance, and its own generation depth (deepest input depth + 1); its synthetic
  output is stamped with the run's marker.
- An export stamps the same marker on every row, stores one fingerprint per exported patient in
  its manifest, and appends them to the local registry once the export folder is complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinsynth.cohort import Cohort
from clinsynth.lineage.fingerprint import patient_fingerprints
from clinsynth.lineage.marker import (
    MARKER_COLUMN,
    SUMMARY_KEY,
    cohort_markers,
    lineage_id,
    make_marker,
    parse_marker,
    stamp,
)
from clinsynth.lineage.registry import RegistryEntry, register_export, registry_path

MECHANISM = (
    f"Every row of every file carries a '{MARKER_COLUMN}' column 'cs-<lineage id>:d<generation "
    "depth>'; each exported patient's ID-free content fingerprint (statics + rounded value "
    "sequence) is listed here and in the local export registry, so the records are recognised "
    "even without the column. clinsynth refuses to train on them unless explicitly allowed."
)


def _max_depth(cohort: Cohort) -> int:
    parsed = [parse_marker(m) for m in cohort_markers(cohort).values()]
    return max((m.depth for m in parsed if m is not None), default=0)


def run_section(loaded: Cohort, train: Cohort, allowed: float, run_key: str) -> dict[str, Any]:
    """The ``lineage`` section of a run manifest (counts and run ids only, no patient ids).

    ``run_key`` identifies the run deterministically (e.g. input hash + configuration, not the
    creation time), so the same input, configuration and seed still give byte-identical files.
    """
    depth = _max_depth(loaded) + 1
    n_train_synthetic = len(cohort_markers(train))
    return {
        "allow_synthetic_fraction": allowed,
        "input": loaded.provenance.get(SUMMARY_KEY),
        "training": {
            "patients": train.n_patients,
            "synthetic_patients": n_train_synthetic,
            "synthetic_fraction": round(n_train_synthetic / max(train.n_patients, 1), 6),
            "max_depth": _max_depth(train),
        },
        "depth": depth,
        "lineage_id": lineage_id(run_key),
        "marker": make_marker(lineage_id(run_key), depth),
    }


def stamp_run_output(synthetic: Cohort, section: dict[str, Any]) -> Cohort:
    """The run's synthetic cohort with the run's marker on every patient."""
    return stamp(synthetic, section["marker"])


def run_depth(run_manifest: dict[str, Any]) -> int:
    """A run's generation depth (runs made before lineage existed trained on real data: 1)."""
    return int((run_manifest.get("lineage") or {}).get("depth", 1))


@dataclass
class ExportLineage:
    """What an export stamps and registers."""

    run_id: str
    depth: int
    marker: str
    fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def lineage_id(self) -> str:
        return self.marker.split(":", 1)[0]


def prepare_export(cohort: Cohort, run_manifest: dict[str, Any]) -> tuple[Cohort, ExportLineage]:
    """Stamp the cohort about to be exported with its run's marker (same as the run's output)."""
    run_id = str(run_manifest.get("clinsynth_run") or "unknown-run")
    depth = run_depth(run_manifest)
    recorded = parse_marker((run_manifest.get("lineage") or {}).get("marker"))
    if recorded is not None and recorded.well_formed:
        marker = str(recorded)
    else:  # a run made before lineage existed (or by another tool): named after its run id
        marker = make_marker(lineage_id(run_id), depth)
    return stamp(cohort, marker), ExportLineage(run_id=run_id, depth=depth, marker=marker)


def export_section(lineage: ExportLineage, written: Cohort) -> dict[str, Any]:
    """The ``lineage`` section of an export manifest; fingerprints of the cohort *as written*
    (read back from the files), so they are exactly what a later load of a copy computes."""
    lineage.fingerprints = patient_fingerprints(written)
    return {
        "mechanism": MECHANISM,
        "marker_column": MARKER_COLUMN,
        "marker": lineage.marker,
        "lineage_id": lineage.lineage_id,
        "generation_depth": lineage.depth,
        "source_run": lineage.run_id,
        "registry": str(registry_path()),
        "fingerprints": dict(sorted(lineage.fingerprints.items())),
    }


def record_export(
    lineage: ExportLineage,
    export_id: str,
    created: str,
    manifest: str | Path,
    schema_name: str,
    files: dict[str, str],
) -> Path:
    """Append the export to the registry (call once the export folder is in place)."""
    entry = RegistryEntry(
        lineage_id=lineage.lineage_id,
        depth=lineage.depth,
        export_id=export_id,
        run_id=lineage.run_id,
        created=created,
        manifest=str(Path(manifest).resolve()),
        schema_name=schema_name,
        fingerprints=sorted(set(lineage.fingerprints.values())),
        files=dict(files),
    )
    return register_export(entry)
