"""Lineage of clinsynth output: mark it, fingerprint it, register it, recognise it, refuse it.

The mechanism (why two signals):

- **Marker column** ``clinsynth_run`` on every row of every CSV clinsynth writes for a synthetic
  cohort (run output and exports), value ``cs-<12 hex>:d<depth>`` — the lineage id (hash of the
  run id) and the generation depth (1 = trained on real data; trained on depth-d data → d + 1).
  It survives copying, row subsetting and concatenation, and needs no registry.
- **Content fingerprints**: an ID-free hash per exported patient (statics + rounded value
  sequence), stored in the export manifest and appended to a local registry
  (``$CLINSYNTH_REGISTRY`` or ``~/.clinsynth/registry.jsonl``). A file whose marker column was
  stripped and whose ids were re-keyed is still recognised, whole or with rows mixed into
  real data — on any machine that has the registry.

The loader runs :func:`detect_lineage` on every cohort it reads and, when the cohort is read for
training, :func:`enforce_allowance`: clinsynth-made patients beyond ``allow_synthetic_fraction``
(default 0) refuse the cohort with :class:`SyntheticDataRefused`. Reading synthetic cohorts for
audits and export is never refused. The writer writes the marker column back for every patient
that carries one, so a load/write round trip cannot launder lineage.
"""

from clinsynth.lineage.detect import (
    ALLOWANCE_FLAG,
    LineageReport,
    RunOrigin,
    SyntheticDataRefused,
    attach,
    check_allowance_value,
    detect_lineage,
    enforce_allowance,
)
from clinsynth.lineage.fingerprint import patient_fingerprints
from clinsynth.lineage.marker import (
    MARKER_COLUMN,
    MARKERS_KEY,
    Marker,
    cohort_markers,
    lineage_id,
    make_marker,
    parse_marker,
    stamp,
)
from clinsynth.lineage.registry import (
    Registry,
    RegistryEntry,
    read_registry,
    register_export,
    registry_path,
)

__all__ = [
    "ALLOWANCE_FLAG",
    "MARKERS_KEY",
    "MARKER_COLUMN",
    "LineageReport",
    "Marker",
    "Registry",
    "RegistryEntry",
    "RunOrigin",
    "SyntheticDataRefused",
    "attach",
    "check_allowance_value",
    "cohort_markers",
    "detect_lineage",
    "enforce_allowance",
    "lineage_id",
    "make_marker",
    "parse_marker",
    "patient_fingerprints",
    "read_registry",
    "register_export",
    "registry_path",
    "stamp",
]
