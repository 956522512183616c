"""`clinsynth audit` on files (exit 0 pass / 4 fail / 2 usage) and on a run directory."""

from __future__ import annotations

import json
from pathlib import Path

import audit_cases as cases
import numpy as np
from factories import flat
from fake_runs import make_run
from typer.testing import CliRunner

from clinsynth.auditing import audit_run
from clinsynth.cli import app
from clinsynth.io import sha256_file
from clinsynth.runs import read_manifest
from clinsynth.simulate import simulate_cohort
from clinsynth.writer import write_cohort

runner = CliRunner()


def files_root(tmp: Path) -> dict[str, Path]:
    train, holdout, other = cases.three_way(100, seed=5)
    made = {
        "train": train,
        "holdout": holdout,
        "real": cases.rekey(other),
        "shuffled": cases.shuffled_time(other),
    }
    return {k: write_cohort(c, tmp / k)[0] for k, c in made.items()}


def _audit(paths: dict[str, Path], synthetic: str, out: Path, *extra: str):
    args = [
        "audit",
        "--schema",
        "icu_sim",
        "--real",
        str(paths["train"]),
        "--holdout",
        str(paths["holdout"]),
        "--synthetic",
        str(paths[synthetic]),
        "--out",
        str(out),
        *extra,
    ]
    return runner.invoke(app, args)


def test_files_mode_exit_codes_and_reports(tmp_path_factory):
    paths = files_root(tmp_path_factory.mktemp("cohorts"))
    out = tmp_path_factory.mktemp("audits")
    ok = _audit(paths, "real", out / "real")
    assert ok.exit_code == 0, ok.output
    assert "Audit PASSED" in ok.output and "membership_dcr_auroc" in ok.output
    report = json.loads((out / "real" / "audit.json").read_text())
    assert report["verdict"] == "pass"
    assert report["inputs"]["synthetic"]["sha256"] == sha256_file(paths["real"])
    assert (out / "real" / "audit.html").read_text().count("<img") >= 5

    bad = _audit(paths, "shuffled", out / "shuffled")
    assert bad.exit_code == 4, bad.output
    assert "Audit FAILED" in bad.output and "temporal_covariance" in bad.output
    assert json.loads((out / "shuffled" / "audit.json").read_text())["verdict"] == "fail"

    again = _audit(paths, "real", out / "real")  # never overwrites silently
    assert again.exit_code == 2 and "already exists" in flat(again.output)
    assert _audit(paths, "real", out / "real", "--force").exit_code == 0


def test_usage_errors_are_one_paragraph(tmp_path):
    nothing = runner.invoke(app, ["audit"])
    assert nothing.exit_code == 2 and "Nothing to audit" in nothing.output
    both = runner.invoke(app, ["audit", str(tmp_path), "--schema", "icu_sim"])
    assert both.exit_code == 2 and "not both" in both.output
    policy = runner.invoke(app, ["audit", str(tmp_path), "--policy", "lenient"])
    assert policy.exit_code == 2 and "Traceback" not in policy.output


def test_audit_run_records_verdict_and_hashes_in_the_manifest(tmp_path):
    cohort = simulate_cohort(660, seed=3)
    ids = np.array(cohort.patient_ids)
    real = cohort.subset(ids[:520])
    real_file = write_cohort(real, tmp_path / "real")[0]
    synthetic = cases.rekey(cohort.subset(ids[520:]))
    run = make_run(tmp_path, synthetic, audited=False, real_data=real_file)

    result = audit_run(run, progress=False)
    manifest = read_manifest(run)
    section = manifest["audit"]
    assert section["verdict"] == result.verdict and section["passed"] == result.passed
    assert section["policy"] == "default"
    expected = {"synthetic/cohort.csv", "model.pt"}
    assert set(section["files"]) == expected
    for rel, digest in section["files"].items():
        assert sha256_file(run / rel) == digest
    for name in ("audit.json", "audit.html"):
        assert manifest["files"][name] == sha256_file(run / name)
    audit_json = json.loads((run / "audit.json").read_text())
    assert audit_json["meta"]["n_patients"] == {
        "training": 416,
        "holdout": 104,
        "synthetic": 140,
        "reference": None,
    }
    text = (run / "audit.json").read_text() + (run / "audit.html").read_text()
    assert not [p for p in real.patient_ids if f'"{p}"' in text]  # no real ID written

    cli = runner.invoke(app, ["audit", str(run)])
    assert cli.exit_code == (0 if result.passed else 4), cli.output
