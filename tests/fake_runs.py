"""Fabricated run directories for the export / review tests: no model is trained.

A fake run has what `clinsynth generate` and `clinsynth audit` leave behind (DESIGN.md): the
synthetic cohort in its schema's layout, a stand-in model.pt, audit.json and a manifest with the
input, privacy and audit sections (the audit section hashing synthetic/* and model.pt).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from clinsynth.cohort import Cohort
from clinsynth.io import sha256_file, write_json_atomic
from clinsynth.provenance import package_versions
from clinsynth.runs import hash_files, write_manifest
from clinsynth.schema import Schema, parse_schema
from clinsynth.writer import write_cohort

CHECKS = [
    {
        "name": "membership_dcr_auroc",
        "family": "membership",
        "value": 0.52,
        "threshold": 0.6,
        "direction": "max",
        "required": True,
    },
    {
        "name": "tstr_auroc_ratio",
        "family": "utility",
        "value": 0.9,
        "threshold": 0.8,
        "direction": "min",
        "required": True,
    },
]


def with_schema(cohort: Cohort, schema: Schema) -> Cohort:
    return Cohort(
        schema=schema, statics=cohort.statics.copy(), observations=cohort.observations.copy()
    )


def rename(cohort: Cohort, mapping: dict[str, str]) -> Cohort:
    """The same patients under other IDs (e.g. a real-looking ID planted in a synthetic set)."""
    obs = cohort.observations.assign(patient_id=cohort.observations["patient_id"].replace(mapping))
    return Cohort(
        schema=cohort.schema, statics=cohort.statics.rename(index=mapping), observations=obs
    )


def concat(a: Cohort, b: Cohort) -> Cohort:
    return Cohort(
        schema=a.schema,
        statics=pd.concat([a.statics, b.statics]),
        observations=pd.concat([a.observations, b.observations], ignore_index=True),
    )


def wide_variant(schema: Schema) -> Schema:
    """The same fields in a wide layout (one column per field), to test the other writer path."""
    data = schema.model_dump(mode="json")
    data["name"] = f"{schema.name}_wide"
    data["layout"] = {
        "format": "wide",
        "id_column": "stay",
        "time_column": "hours_since_admission",
        "time_format": "hours",
    }
    return parse_schema(data)


def make_run(
    root: Path,
    synthetic: Cohort,
    *,
    passed: bool = True,
    flagged: tuple[str, ...] = (),
    dp: bool = True,
    audited: bool = True,
    real_data: Path | None = None,
    name: str = "run",
) -> Path:
    """Write a run folder as generate + audit would, with the given audit outcome."""
    run = root / name
    (run / "synthetic").mkdir(parents=True)
    write_cohort(synthetic, run / "synthetic")
    (run / "model.pt").write_bytes(b"stand-in for a trained model")
    schema = synthetic.schema
    manifest = {
        "clinsynth_run": f"test-{name}",
        "created": "2030-01-01T00:00:00+00:00",
        "command": "test fabrication",
        "input": {
            "data": {
                "path": str(real_data.resolve()) if real_data else "/nonexistent/real.csv",
                "sha256": sha256_file(real_data) if real_data else "0" * 64,
            },
            "outcomes": None,
            "schema_name": schema.name,
            "schema_fingerprint": schema.fingerprint(),
            "schema": schema.model_dump(mode="json"),
            "subsample": None,
            "subsample_seed": 0,
            "holdout": {"fraction": 0.2, "seed": 0},
            "n_patients": {"loaded": 500, "train": 400, "holdout": 100},
            "cleaning": {"counts": {"out_of_limits": {"HR": 7}}, "notes": []},
        },
        "config": {"epochs": 1, "hidden": 8},
        "seeds": {"split": 0, "training": 0, "sampling": 0},
        "privacy": {
            "epsilon": 3.9 if dp else "infinity",
            "target_epsilon": 4.0 if dp else None,
            "delta": 2.5e-4,
            "accountant": "prv",
            "noise_multiplier": 1.1,
            "epochs": 1,
            "steps": 10,
        },
        "rules_kept_while_sampling": {
            "variables": {"FiO2": {"cells_bounded": 2496, "redrawn": 267, "redrawn_share": 0.107}},
            "not_enforced": [],
        },
        "versions": package_versions(),
        "timings": {},
    }
    manifest["files"] = hash_files(run)
    if audited:
        checks = [{**c, "passed": passed or c["family"] != "membership"} for c in CHECKS]
        verdict = "pass" if passed else "fail"
        audit = {
            "verdict": verdict,
            "passed": passed,
            "policy": "default",
            "failed_required": [] if passed else ["membership_dcr_auroc"],
            "checks": checks,
            "flagged_synthetic_ids": list(flagged),
            "summary": {"n_flagged": len(flagged)},
        }
        write_json_atomic(run / "audit.json", audit)
        manifest["audit"] = {
            "verdict": verdict,
            "passed": passed,
            "policy": "default",
            "summary": {"failed_required": audit["failed_required"]},
            "files": hash_files(run, exclude=("manifest.json", "audit.json")),
            "reports": {"audit.json": sha256_file(run / "audit.json")},
        }
    write_manifest(run, manifest)
    return run
