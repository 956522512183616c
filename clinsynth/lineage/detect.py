"""Which patients of a cohort clinsynth made, from which runs, at which generation depth.

Two independent signals, so that neither copying nor tidying a file hides synthetic records:

1. the ``clinsynth_run`` marker the writer puts on every row (kept per patient in provenance);
2. for unmarked patients, their content fingerprint looked up in the local export registry
   (only when the registry has entries: a machine that never exported pays nothing).

``enforce_allowance`` turns a report into the training refusal: training a generator on its own
output closes the loop that makes generative models collapse (rare presentations vanish, common
patterns take over, errors compound), and the privacy guarantee speaks for real patients only.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinsynth.cohort import Cohort
from clinsynth.errors import ClinsynthError, CohortRefused
from clinsynth.lineage.fingerprint import patient_fingerprints
from clinsynth.lineage.marker import (
    MARKERS_KEY,
    SUMMARY_KEY,
    Marker,
    cohort_markers,
    parse_marker,
)
from clinsynth.lineage.registry import Registry, RegistryEntry, read_registry

SOURCES_KEY = "lineage_sources"
ALLOWANCE_FLAG = "--allow-synthetic-fraction"


class SyntheticDataRefused(CohortRefused):
    """The cohort holds clinsynth-made patients beyond the allowed fraction (model collapse)."""


@dataclass
class RunOrigin:
    """The patients of one clinsynth run found in a cohort."""

    lineage_id: str
    depth: int
    patients: int
    by_marker: int
    by_registry: int
    exports: list[RegistryEntry] = field(default_factory=list)

    @property
    def detected_by(self) -> str:
        ways = []
        if self.by_marker:
            ways.append("its clinsynth_run column")
        if self.by_registry:
            ways.append("content fingerprints in the export registry")
        return " and ".join(ways)

    def describe(self) -> str:
        text = (
            f"run {self.lineage_id} (generation depth {self.depth}): {self.patients:,} patients, "
            f"recognised by {self.detected_by}"
        )
        for e in self.exports[:3]:
            when = e.created or "on an unknown date"
            text += f"; exported {when} ({e.manifest or 'manifest unknown'})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "lineage_id": self.lineage_id,
            "depth": self.depth,
            "patients": self.patients,
            "detected_by": {"marker": self.by_marker, "registry": self.by_registry},
            "exports": [
                {"export_id": e.export_id, "run_id": e.run_id, "created": e.created}
                | {"manifest": e.manifest}
                for e in self.exports
            ],
        }


@dataclass
class LineageReport:
    """What is known of a cohort's origin; ``synthetic`` maps patient id → parsed marker."""

    n_patients: int
    synthetic: dict[str, Marker] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # patient id → "marker" / "registry"
    registry: Registry | None = None
    file_matches: list[RegistryEntry] = field(default_factory=list)
    allowed_fraction: float | None = None

    @property
    def n_synthetic(self) -> int:
        return len(self.synthetic)

    @property
    def fraction(self) -> float:
        return self.n_synthetic / self.n_patients if self.n_patients else 0.0

    @property
    def found(self) -> bool:
        return bool(self.synthetic or self.file_matches)

    @property
    def max_depth(self) -> int:
        """Deepest generation present (0 = only real patients)."""
        depths = [m.depth for m in self.synthetic.values()] + [e.depth for e in self.file_matches]
        return max(depths, default=0)

    @property
    def next_depth(self) -> int:
        """Generation depth of a model trained on this cohort (real only → 1)."""
        return self.max_depth + 1

    @property
    def malformed_markers(self) -> int:
        return sum(not m.well_formed for m in self.synthetic.values())

    def markers(self) -> dict[str, str]:
        """Patient id → marker text (registry matches get their export's marker back)."""
        return {pid: str(m) if m.well_formed else m.lineage_id for pid, m in self.synthetic.items()}

    def runs(self) -> list[RunOrigin]:
        groups: dict[tuple[str, int], Counter] = {}
        for pid, m in self.synthetic.items():
            key = (m.lineage_id, m.depth)
            groups.setdefault(key, Counter())[self.sources.get(pid, "marker")] += 1
        out = []
        for (lid, depth), counts in sorted(groups.items(), key=lambda kv: (-kv[0][1], kv[0][0])):
            exports = self.registry.by_lineage_id(lid) if self.registry else []
            out.append(
                RunOrigin(lid, depth, sum(counts.values()), counts["marker"], counts["registry"],
                          exports)
            )  # fmt: skip
        return out

    def restrict(self, patient_ids: list[str]) -> LineageReport:
        """The same report for a subset of patients (e.g. after the loader's subsample)."""
        keep = set(patient_ids)
        return LineageReport(
            n_patients=len(keep),
            synthetic={p: m for p, m in self.synthetic.items() if p in keep},
            sources={p: s for p, s in self.sources.items() if p in keep},
            registry=self.registry,
            file_matches=self.file_matches,
            allowed_fraction=self.allowed_fraction,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary for manifests: counts and runs, never a patient id."""
        registry = self.registry
        return {
            "patients": self.n_patients,
            "synthetic_patients": self.n_synthetic,
            "synthetic_fraction": round(self.fraction, 6),
            "allowed_fraction": self.allowed_fraction,
            "max_depth": self.max_depth,
            "generation_depth": self.next_depth,
            "runs": [r.to_dict() for r in self.runs()],
            "malformed_markers": self.malformed_markers,
            "registry": None
            if registry is None
            else {
                "path": str(registry.path),
                "exports": len(registry.entries),
                "unreadable_lines": registry.unreadable_lines,
            },
        }

    def describe_runs(self) -> str:
        return "; ".join(r.describe() for r in self.runs())


def detect_lineage(
    source: Cohort | str | Path,
    schema: Any = None,
    outcomes_path: str | Path | None = None,
    *,
    registry: Registry | None = None,
    use_fingerprints: bool = True,
) -> LineageReport:
    """Lineage of an in-memory cohort, or of a cohort file (read with ``schema``, never refused).

    For a file, the loader has already looked up fingerprints; the report also names any registry
    export whose file hash equals this file's (an untouched copy of an export).
    """
    if not isinstance(source, Cohort):
        from clinsynth.io import sha256_file
        from clinsynth.loader import load_cohort

        registry = registry if registry is not None else read_registry()
        cohort = load_cohort(
            source, schema, outcomes_path=outcomes_path, enforce_window=False, progress=False,
            purpose="read",
        )  # fmt: skip
        report = detect_lineage(cohort, registry=registry, use_fingerprints=False)
        match = registry.match_file_hash(sha256_file(source)) if registry else None
        report.file_matches = [match] if match is not None else []
        return report
    registry = registry if registry is not None else read_registry()
    synthetic: dict[str, Marker] = {}
    sources: dict[str, str] = {}
    known_sources = source.provenance.get(SOURCES_KEY) or {}
    for pid, text in cohort_markers(source).items():
        marker = parse_marker(text)
        if marker is not None:
            synthetic[pid] = marker
            sources[pid] = known_sources.get(pid, "marker")
    unmarked = [p for p in source.patient_ids if p not in synthetic]
    if use_fingerprints and registry and unmarked:
        subset = source if len(unmarked) == source.n_patients else source.subset(unmarked)
        for pid, fp in patient_fingerprints(subset).items():
            entry = registry.match_fingerprint(fp)
            if entry is not None:
                synthetic[pid] = Marker(entry.lineage_id, entry.depth)
                sources[pid] = "registry"
    return LineageReport(
        n_patients=source.n_patients, synthetic=synthetic, sources=sources, registry=registry
    )


def attach(cohort: Cohort, report: LineageReport) -> None:
    """Record ``report`` in ``cohort.provenance``: summary, per-patient markers and their source."""
    cohort.provenance[SUMMARY_KEY] = report.to_dict()
    cohort.provenance[MARKERS_KEY] = report.markers()
    cohort.provenance[SOURCES_KEY] = dict(report.sources)


def check_allowance_value(allowed: float) -> float:
    if isinstance(allowed, bool) or not isinstance(allowed, int | float) or math.isnan(allowed):
        raise ClinsynthError(f"{ALLOWANCE_FLAG} must be a number in [0, 1], got {allowed!r}.")
    if not 0.0 <= allowed <= 1.0:
        raise ClinsynthError(
            f"{ALLOWANCE_FLAG} must be a fraction of patients between 0 and 1, got {allowed}."
        )
    return float(allowed)


def enforce_allowance(report: LineageReport, allowed: float, source: str) -> LineageReport:
    """Refuse training data with more clinsynth-made patients than ``allowed`` (a fraction)."""
    allowed = check_allowance_value(allowed)
    report.allowed_fraction = allowed
    if report.n_synthetic == 0 or report.fraction <= allowed + 1e-12:
        return report
    needed = math.ceil(report.fraction * 1000) / 1000
    raise SyntheticDataRefused(
        f"{source} contains {report.n_synthetic:,} patients made by clinsynth "
        f"({report.fraction:.1%} of {report.n_patients:,}): {report.describe_runs()}. clinsynth "
        "refuses to train on its own output: a generator fitted to synthetic records learns the "
        "previous model's mistakes instead of patients, loses rare presentations and drifts "
        "further with every generation (model collapse), and the privacy guarantee and audits "
        "are about real patients only. Remove those patients and train on real data. An expert "
        f"who wants to study the effect can pass {ALLOWANCE_FLAG} F (here F >= {needed:g}) to "
        "mix in at most a fraction F of synthetic patients; the fraction and the generation "
        f"depth ({report.next_depth}) are recorded in the run manifest."
    )
