"""Audit a run directory (or any three cohort files) and record the verdict where export finds it.

``audit_run`` re-derives the real members / non-members from the input named in the manifest
(hash-checked by ``runs.load_real_split``), reads the synthetic cohort back through the loader,
runs ``audits.run_audits``, writes ``audit.json`` and ``audit.html`` atomically and records an
``audit`` section in the manifest: verdict, policy, summary, and the sha256 of every audited file
(``synthetic/*`` and ``model.pt``), which export re-checks to detect tampering. Files are hashed
before they are read and again after the audit, so a file swapped mid-audit is caught too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from audits import AuditResult, run_audits
from audits.policy import Policy, load_policy
from audits.report import write_html
from clinsynth.cohort import Cohort
from clinsynth.errors import ClinsynthError
from clinsynth.io import new_directory, sha256_file, write_json_atomic
from clinsynth.provenance import package_versions, utc_now
from clinsynth.runs import (
    AUDIT_HTML,
    AUDIT_JSON,
    MODEL_FILE,
    SYNTHETIC_DIR,
    load_real_split,
    load_synthetic,
    read_manifest,
    schema_from_manifest,
    update_manifest,
)
from clinsynth.schema import Schema, load_schema

AUDIT_SEED = 0


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A per-family progress bar on stderr (the audit of 2,000 stays takes tens of seconds)."""
    if not enabled:
        yield None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("audit: {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=1)

        def update(name: str, done: int, total: int) -> None:
            bar.update(task, description=name, completed=done, total=total)

        yield update


def policy_fingerprint(policy: Policy) -> str:
    return hashlib.sha256(policy.model_dump_json().encode()).hexdigest()


def audited_files(run_dir: Path) -> dict[str, str]:
    """sha256 of the files the audit vouches for: everything under synthetic/ and model.pt."""
    hashes = {}
    folder = run_dir / SYNTHETIC_DIR
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_file() and not path.name.startswith("."):
            hashes[path.relative_to(run_dir).as_posix()] = sha256_file(path)
    model = run_dir / MODEL_FILE
    if model.is_file():
        hashes[MODEL_FILE] = sha256_file(model)
    return hashes


def audit_summary(result: AuditResult) -> dict[str, Any]:
    """The short form kept in manifests: verdict, failing checks, headline numbers."""
    return {
        "n_checks": len(result.checks),
        "n_required": sum(c.required for c in result.checks),
        "failed_required": [c.name for c in result.failed_required],
        "failed_optional": [c.name for c in result.failed_checks if not c.required],
        "n_flagged_synthetic": len(result.flagged_synthetic_ids),
        "values": {c.name: c.to_dict()["value"] for c in result.checks},
    }


def _write_reports(result: AuditResult, folder: Path, extra: dict[str, Any]) -> None:
    write_json_atomic(folder / AUDIT_JSON, {**result.to_dict(), **extra})
    write_html(result, folder / AUDIT_HTML)


def audit_run(
    run_dir: str | Path,
    policy: str | Path | Policy = "default",
    *,
    reference: str | Path | None = None,
    reference_outcomes: str | Path | None = None,
    progress: bool = True,
) -> AuditResult:
    """Audit a generate run in place (see module docstring); returns the ``AuditResult``.

    ``reference``: a file of real patients from the same population (neither training nor
    held-out) for the density attack; by default half of the held-out patients serve.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    pol = load_policy(policy)
    schema = schema_from_manifest(manifest)
    before = audited_files(run_dir)
    if not any(rel.startswith(f"{SYNTHETIC_DIR}/") for rel in before):
        raise ClinsynthError(
            f"{run_dir} has no synthetic cohort to audit ({SYNTHETIC_DIR}/ is empty)."
        )
    train, holdout = load_real_split(manifest)
    synthetic = load_synthetic(run_dir, schema)
    ref = None
    if reference is not None:
        outcomes = Path(reference_outcomes) if reference_outcomes is not None else None
        ref = _load(Path(reference), schema, outcomes, "reference", progress)
    with progress_bar(progress) as update:
        result = run_audits(
            train,
            holdout,
            synthetic,
            pol,
            reference=ref,
            seed=AUDIT_SEED,
            progress=update,
            loader_report=synthetic.report,
        )
    if audited_files(run_dir) != before:
        raise ClinsynthError(
            f"Files in {run_dir} changed while they were being audited; nothing was recorded. "
            "Make sure nothing else writes to the run folder and audit again."
        )
    extra = {
        "run": manifest.get("clinsynth_run"),
        "audited_files": before,
        "policy_fingerprint": policy_fingerprint(pol),
    }
    _write_reports(result, run_dir, extra)
    section = {
        "verdict": result.verdict,
        "passed": result.passed,
        "policy": pol.name,
        "policy_fingerprint": policy_fingerprint(pol),
        "created": utc_now(),
        "seed": AUDIT_SEED,
        "summary": audit_summary(result),
        "files": before,
        "reports": {name: sha256_file(run_dir / name) for name in (AUDIT_JSON, AUDIT_HTML)},
        "timings_seconds": result.timings,
        "versions": package_versions(),
    }
    files = dict(manifest.get("files") or {})
    files.update(section["reports"])
    update_manifest(run_dir, audit=section, files=files)
    return result


def _load(path: Path, schema: Schema, outcomes: Path | None, what: str, progress: bool) -> Cohort:
    from clinsynth.loader import load_cohort

    if not Path(path).is_file():
        raise ClinsynthError(f"The {what} file {path} does not exist.")
    return load_cohort(
        path, schema, outcomes_path=outcomes, enforce_window=False, progress=progress
    )


def audit_files(
    schema: str | Path | Schema,
    real: str | Path,
    holdout: str | Path,
    synthetic: str | Path,
    out_dir: str | Path,
    *,
    real_outcomes: str | Path | None = None,
    holdout_outcomes: str | Path | None = None,
    synthetic_outcomes: str | Path | None = None,
    reference: str | Path | None = None,
    reference_outcomes: str | Path | None = None,
    policy: str | Path | Policy = "default",
    force: bool = False,
    progress: bool = True,
) -> AuditResult:
    """Audit any three cohort files in a schema's layout; audit.json + audit.html go to ``out_dir``.

    ``real`` are the training members, ``holdout`` real patients NOT used for training. The
    output folder is built aside and moved into place only when complete; an existing non-empty
    folder is refused unless ``force``.
    """
    sch = schema if isinstance(schema, Schema) else load_schema(schema)
    pol = load_policy(policy)
    opt = lambda p: Path(p) if p is not None else None  # noqa: E731
    inputs = {
        "training": (real, real_outcomes),
        "held-out": (holdout, holdout_outcomes),
        "synthetic": (synthetic, synthetic_outcomes),
    }
    if reference is not None:
        inputs["reference"] = (reference, reference_outcomes)
    hashes = {
        what: {"file": Path(p).name, "sha256": sha256_file(p) if Path(p).is_file() else None}
        for what, (p, _) in inputs.items()
    }
    cohorts = {w: _load(Path(p), sch, opt(o), w, progress) for w, (p, o) in inputs.items()}
    with progress_bar(progress) as update:
        result = run_audits(
            cohorts["training"],
            cohorts["held-out"],
            cohorts["synthetic"],
            pol,
            reference=cohorts.get("reference"),
            seed=AUDIT_SEED,
            progress=update,
            loader_report=cohorts["synthetic"].report,
        )
    extra = {"inputs": hashes, "policy_fingerprint": policy_fingerprint(pol)}
    with new_directory(out_dir, force=force) as staging:
        _write_reports(result, staging, extra)
    return result
