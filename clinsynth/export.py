"""The export gate: only an audited, passing, untampered run leaves the building.

``export_run`` refuses (ClinsynthError, nothing written) when the run has no audit, the audit
failed, the run was trained without differential privacy, or any file the audit vouched for has
changed since (re-hashed against the manifest's ``audit`` section). Otherwise it drops the
synthetic records the memorisation audit flagged as too close to a real patient, gives every
record a fresh synthetic ID, and writes — atomically, via a staging folder — the cohort in the
schema's own layout plus ``manifest.json`` (lineage and hashes) and ``DATASHEET.md``.

What is deliberately *not* exported: real patient IDs (never in a run dir either), the input's
path (file names can carry dates or sites), and the loader's cleaning report (counts computed on
real data that were not paid for from the privacy budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import clinsynth
from clinsynth.cohort import Cohort
from clinsynth.datasheet import render_datasheet
from clinsynth.errors import ClinsynthError
from clinsynth.io import new_directory, read_json, sha256_file, write_json_atomic, write_text_atomic
from clinsynth.lineage.accounting import export_section, prepare_export, record_export
from clinsynth.provenance import environment, package_versions, utc_now
from clinsynth.runs import (
    AUDIT_JSON,
    SYNTHETIC_DIR,
    load_synthetic,
    manifest_path,
    read_manifest,
    schema_from_manifest,
    update_manifest,
)
from clinsynth.schema import Schema

EXPORT_MANIFEST = "manifest.json"
DATASHEET = "DATASHEET.md"
ID_PREFIX = "SYN"


class ExportRefused(ClinsynthError):
    """The run may not be exported as it is (no audit, changed files, no DP...)."""


class AuditFailed(ExportRefused):
    """The run's audit failed: same exit code as a failing `clinsynth audit`."""

    exit_code = 4


@dataclass
class ExportSummary:
    """What an export wrote, for the CLI summary and for callers such as ``clinsynth run``."""

    out_dir: Path
    n_synthetic: int
    n_dropped: int
    n_exported: int
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256

    @property
    def manifest(self) -> Path:
        return self.out_dir / EXPORT_MANIFEST

    @property
    def datasheet(self) -> Path:
        return self.out_dir / DATASHEET


@dataclass
class VettedRun:
    """A run that passed every gate check: what the export is built from."""

    run_dir: Path
    manifest: dict[str, Any]
    audit_section: dict[str, Any]
    audit: dict[str, Any]
    schema: Schema
    flagged_ids: list[str]


# ---------------------------------------------------------------------------------------------
# the gate


def audit_passed(audit: dict[str, Any]) -> bool | None:
    """Read a verdict from an audit record (``passed: bool`` or ``verdict: "pass"/"fail"``)."""
    if isinstance(audit.get("passed"), bool):
        return audit["passed"]
    verdict = audit.get("verdict")
    if isinstance(verdict, str):
        return verdict.strip().lower() in ("pass", "passed")
    if isinstance(verdict, bool):
        return verdict
    return None


def audited_hashes(audit_section: dict[str, Any]) -> dict[str, str]:
    """The ``relative path -> sha256`` map the audit recorded for the files it vouched for."""
    for key in ("files", "audited_files", "sha256"):
        value = audit_section.get(key)
        if isinstance(value, dict) and value:
            return {str(k): str(v) for k, v in value.items()}
    return {}


def is_differentially_private(privacy: dict[str, Any]) -> bool:
    """False when the generator ran without DP (``--no-dp-unsafe``: epsilon recorded as inf)."""
    if privacy.get("dp") is False:
        return False
    eps = privacy.get("epsilon", privacy.get("epsilon_spent"))
    if eps is None:
        return False
    if isinstance(eps, str):
        try:
            eps = float(eps)
        except ValueError:
            return False
    return math.isfinite(float(eps))


def changed_files(run_dir: Path, recorded: dict[str, str]) -> list[str]:
    """Audited files that are gone or differ, plus synthetic files the audit never saw."""
    problems = []
    for rel, digest in sorted(recorded.items()):
        path = run_dir / rel
        if not path.is_file():
            problems.append(f"{rel} (missing)")
        elif sha256_file(path) != digest:
            problems.append(f"{rel} (modified)")
    synthetic = run_dir / SYNTHETIC_DIR
    if synthetic.is_dir():
        for path in sorted(synthetic.rglob("*")):
            rel = path.relative_to(run_dir).as_posix()
            if path.is_file() and not path.name.startswith(".") and rel not in recorded:
                problems.append(f"{rel} (added after the audit)")
    return problems


PRIVACY_FAMILIES = {"membership", "memorisation", "privacy"}


def next_steps(failed_families: set[str]) -> str:
    """What to try after a failed audit: privacy failures and quality failures pull apart."""
    steps = []
    if failed_families & PRIVACY_FAMILIES:
        steps.append(
            "Privacy checks failed: generate again with a lower --epsilon (stronger privacy) "
            "or a larger cohort (--subsample up to 2000)."
        )
    if failed_families - PRIVACY_FAMILIES:
        steps.append(
            "Quality checks failed: try another --seed, more training epochs, a larger cohort, "
            "or — only if your privacy policy allows — a higher --epsilon."
        )
    return " ".join(steps) or "Generate a new run and audit it."


def vet_run(run_dir: str | Path, allow_non_dp: bool = False) -> VettedRun:
    """Every check the export gate makes; raises ExportRefused with the reason and the fix.

    A run without differential privacy (``--no-dp-unsafe`` or the SDV PAR baseline) is refused
    unless ``allow_non_dp``: the audits still vouch for it, but it carries no formal guarantee.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    section = manifest.get("audit")
    audit_file = run_dir / AUDIT_JSON
    if not isinstance(section, dict) or not audit_file.is_file():
        raise ExportRefused(
            f"{run_dir} has not been audited, so nothing can be exported. Run "
            f"`clinsynth audit {run_dir}` first; only a run whose audit passes can be exported."
        )
    audit = read_json(audit_file)
    verdicts = (audit_passed(section), audit_passed(audit))
    if verdicts[0] is None or verdicts[1] is None or verdicts[0] != verdicts[1]:
        raise ExportRefused(
            f"The audit record of {run_dir} is incomplete or inconsistent ({AUDIT_JSON} and the "
            "manifest's audit section disagree or lack a verdict). Re-run "
            f"`clinsynth audit {run_dir}`."
        )
    if not verdicts[0]:
        failed = [
            c for c in audit.get("checks", []) if c.get("passed") is False and c.get("required")
        ]
        names = ", ".join(str(c.get("name", "?")) for c in failed)
        raise AuditFailed(
            f"The audit of {run_dir} FAILED"
            + (f" (required checks failing: {names})" if names else "")
            + ", so the synthetic cohort may not be exported. See audit.html in the run folder "
            f"for why. {next_steps({str(c.get('family')) for c in failed})}"
        )
    recorded = audited_hashes(section)
    if not recorded:
        raise ExportRefused(
            f"The audit section of {run_dir}/manifest.json records no file hashes, so clinsynth "
            f"cannot tell whether the audited files changed. Re-run `clinsynth audit {run_dir}`."
        )
    changed = changed_files(run_dir, recorded)
    reports = section.get("reports") or {}
    if AUDIT_JSON in reports and sha256_file(audit_file) != reports[AUDIT_JSON]:
        changed.append(f"{AUDIT_JSON} (modified)")
    if changed:
        raise ExportRefused(
            f"Files in {run_dir} changed since they were audited: {'; '.join(changed)}. The audit "
            "no longer vouches for them, so nothing was exported. If the change was intended, "
            f"re-run `clinsynth audit {run_dir}`; otherwise restore the original files."
        )
    if not allow_non_dp and not is_differentially_private(manifest.get("privacy", {})):
        raise ExportRefused(
            f"{run_dir} was generated without differential privacy (or records no privacy "
            "accounting). Such a cohort carries no formal privacy guarantee, so clinsynth does "
            "not export it by default: generate a new run with DP enabled (the default), or pass "
            "--allow-non-dp if your governance explicitly accepts an audit-only release."
        )
    flagged = audit.get("flagged_synthetic_ids", section.get("flagged_synthetic_ids", []))
    return VettedRun(
        run_dir=run_dir,
        manifest=manifest,
        audit_section=section,
        audit=audit,
        schema=schema_from_manifest(manifest),
        flagged_ids=[str(i) for i in flagged or []],
    )


# ---------------------------------------------------------------------------------------------
# building the exported cohort


def vetted_cohort(synthetic: Cohort, flagged_ids: list[str]) -> tuple[Cohort, int]:
    """Drop flagged records and re-key the rest to fresh sequential IDs (``SYN00001``...).

    Fresh IDs cut any link to the run's internal IDs (or to whatever IDs a third-party generator
    emitted); times are checked to be relative hours so no date can slip through.
    """
    flagged = set(flagged_ids)
    keep = [pid for pid in synthetic.patient_ids if pid not in flagged]
    n_dropped = synthetic.n_patients - len(keep)
    if not keep:
        raise ExportRefused(
            "Every synthetic record was flagged as too close to a real patient; there is nothing "
            "safe to export. Generate a new run (lower epsilon, more data) and audit it."
        )
    kept = synthetic.subset(keep)
    width = max(5, len(str(len(keep))))
    new_ids = {old: f"{ID_PREFIX}{i:0{width}d}" for i, old in enumerate(keep, start=1)}
    statics = kept.statics.rename(index=new_ids)
    obs = kept.observations.assign(patient_id=kept.observations["patient_id"].map(new_ids))
    hours = pd.to_numeric(obs["hours"], errors="coerce")
    if hours.isna().any() or (hours < 0).any():
        raise ClinsynthError(
            "The synthetic cohort has observation times that are not non-negative relative "
            "hours; refusing to export it. This is a bug in the generator that produced it."
        )
    cohort = Cohort(
        schema=kept.schema,
        statics=statics,
        observations=obs,
        provenance={"synthetic": True, "ids": f"fresh, {ID_PREFIX}-prefixed sequential"},
    )
    return cohort, n_dropped


def check_round_trip(files: list[Path], schema: Schema, expected: Cohort) -> Cohort:
    """Read the written files back with the loader: an export the loader can't read is a bug.

    Returns the cohort as read back (the lineage fingerprints are taken from it)."""
    from clinsynth.loader import load_cohort

    main, *rest = files
    outcomes = rest[0] if rest and schema.layout.outcomes_file else None
    back = load_cohort(main, schema, outcomes_path=outcomes, enforce_window=False, progress=False)
    if sorted(back.patient_ids) != sorted(expected.patient_ids):
        raise ClinsynthError(
            "The exported files do not read back as the same cohort (patients differ); nothing "
            "was exported. This is a bug in the writer."
        )
    return back


# ---------------------------------------------------------------------------------------------
# manifest


def _checks_table(audit: dict[str, Any]) -> list[dict[str, Any]]:
    """Check-level figures only (name, value, threshold, verdict): no per-record detail."""
    keys = ("name", "family", "value", "threshold", "direction", "passed", "required")
    return [{k: c.get(k) for k in keys} for c in audit.get("checks", [])]


def export_manifest(
    vetted: VettedRun, summary: ExportSummary, files: dict[str, str]
) -> dict[str, Any]:
    """Lineage of the export: what went in, how it was made, what the audit found, hashes."""
    run = vetted.manifest
    inp = run.get("input", {})
    section = vetted.audit_section
    return {
        "clinsynth_export": f"{run.get('clinsynth_run', 'run')}-export",
        "created": utc_now(),
        "clinsynth_version": clinsynth.__version__,
        "source_run": {
            "run_id": run.get("clinsynth_run"),
            "run_created": run.get("created"),
            "run_manifest_sha256_at_export": sha256_file(manifest_path(vetted.run_dir)),
            "audit_json_sha256": sha256_file(vetted.run_dir / AUDIT_JSON),
        },
        "input": {
            "data_sha256": (inp.get("data") or {}).get("sha256"),
            "outcomes_sha256": (inp.get("outcomes") or {}).get("sha256"),
            "schema_name": inp.get("schema_name", vetted.schema.name),
            "schema_fingerprint": vetted.schema.fingerprint(),
            "subsample": inp.get("subsample"),
            "holdout": inp.get("holdout"),
            "n_patients": inp.get("n_patients"),
        },
        "schema": vetted.schema.model_dump(mode="json"),
        "config": run.get("config"),
        "seeds": run.get("seeds"),
        "privacy": run.get("privacy"),
        "audit": {
            "passed": audit_passed(section),
            "policy": section.get("policy", vetted.audit.get("policy")),
            "summary": section.get("summary"),
            "checks": _checks_table(vetted.audit),
            "audited_files": audited_hashes(section),
        },
        "records": {
            "synthetic_in_run": summary.n_synthetic,
            "dropped_flagged_too_close_to_real": summary.n_dropped,
            "exported": summary.n_exported,
            "ids": f"fresh sequential IDs ({ID_PREFIX}00001...), unrelated to any real ID",
            "time": "hours relative to the start of each synthetic stay; no dates",
        },
        "versions": {"run": run.get("versions"), "export": package_versions()},
        "environment": environment(),
        "files": files,
    }


# ---------------------------------------------------------------------------------------------
# the export


def _write_cohort(cohort: Cohort, directory: Path) -> list[Path]:
    from clinsynth.writer import write_cohort

    return [Path(p) for p in write_cohort(cohort, directory)]


def export_run(
    run_dir: str | Path, out_dir: str | Path, force: bool = False, allow_non_dp: bool = False
) -> ExportSummary:
    """Export a run's audited synthetic cohort to ``out_dir`` (see the module docstring)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not force:
        raise ClinsynthError(
            f"{out_dir} already exists and is not empty. clinsynth never overwrites an export: "
            "choose a new folder, or pass --force to replace it."
        )
    vetted = vet_run(run_dir, allow_non_dp=allow_non_dp)
    synthetic = load_synthetic(run_dir, vetted.schema)
    cohort, n_dropped = vetted_cohort(synthetic, vetted.flagged_ids)
    # lineage (clinsynth.lineage): the run's marker on every row, so the export stays recognisable
    cohort, lineage = prepare_export(cohort, vetted.manifest)
    summary = ExportSummary(
        out_dir=out_dir,
        n_synthetic=synthetic.n_patients,
        n_dropped=n_dropped,
        n_exported=cohort.n_patients,
    )
    with new_directory(out_dir, force=force) as staging:
        written = _write_cohort(cohort, staging)
        back = check_round_trip(written, vetted.schema, cohort)
        write_text_atomic(staging / DATASHEET, render_datasheet(vetted, summary))
        files = {
            p.relative_to(staging).as_posix(): sha256_file(p)
            for p in sorted(staging.rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        }
        summary.files = files
        # the manifest goes last: a folder with a manifest is a complete export
        manifest = export_manifest(vetted, summary, files)
        manifest["lineage"] = export_section(lineage, back)  # marker + per-patient fingerprints
        write_json_atomic(staging / EXPORT_MANIFEST, manifest)
    # lineage: fingerprints into the local registry, once the export folder is complete
    record_export(lineage, manifest["clinsynth_export"], manifest["created"], summary.manifest,
                  vetted.schema.name, files)  # fmt: skip
    update_manifest(
        run_dir,
        export={
            "created": utc_now(),
            "out_dir": str(out_dir.resolve()),
            "exported": summary.n_exported,
            "dropped_flagged": summary.n_dropped,
            "manifest_sha256": sha256_file(summary.manifest),
        },
    )
    return summary
