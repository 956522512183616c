"""The export gate: refusals write nothing; a passing run exports vetted, re-keyed, round-trippable
files with a manifest and datasheet; no real ID, value sequence or date leaks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_runs import concat, make_run, rename, wide_variant, with_schema
from typer.testing import CliRunner

import clinsynth.export as export_mod
from clinsynth.cli import app
from clinsynth.cohort import Cohort
from clinsynth.errors import ClinsynthError
from clinsynth.export import AuditFailed, ExportRefused, export_run
from clinsynth.io import sha256_file
from clinsynth.loader import load_cohort
from clinsynth.runs import read_manifest
from clinsynth.schema import load_schema
from clinsynth.simulate import simulate_cohort

REAL_ID = "REAL-PATIENT-123"
# a distinctive HR trajectory (integers: HR is written at precision 0)
UNIQUE_HR = [61.0, 147.0, 88.0, 133.0, 59.0, 171.0, 77.0, 142.0]
DATE = "2019-04-01"
runner = CliRunner()


def real_like_patient(seed: int = 99) -> Cohort:
    """One 'real' patient: distinctive ID and a one-of-a-kind HR sequence."""
    c = rename(simulate_cohort(1, seed), {"P0001": REAL_ID})
    obs = c.observations[c.observations["variable"] != "HR"]
    hr = pd.DataFrame(
        {
            "patient_id": REAL_ID,
            "hours": np.arange(len(UNIQUE_HR)) * 2.0 + 0.5,
            "variable": "HR",
            "value": UNIQUE_HR,
        }
    )
    obs = pd.concat([obs, hr], ignore_index=True).sort_values(["hours", "variable"])
    return Cohort(schema=c.schema, statics=c.statics, observations=obs)


@pytest.fixture
def leaky_synthetic() -> Cohort:
    """30 synthetic stays plus a copy of the real patient (which the audit flags)."""
    return concat(simulate_cohort(30, 7), real_like_patient())


def exported_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file())


def test_refuses_without_audit(tmp_path: Path) -> None:
    run = make_run(tmp_path, simulate_cohort(20, 1), audited=False)
    out = tmp_path / "out"
    with pytest.raises(ExportRefused, match="not been audited"):
        export_run(run, out)
    assert not out.exists()


def test_refuses_failed_audit_exit_4(tmp_path: Path) -> None:
    run = make_run(tmp_path, simulate_cohort(20, 1), passed=False)
    out = tmp_path / "out"
    with pytest.raises(AuditFailed, match="membership_dcr_auroc"):
        export_run(run, out)
    result = runner.invoke(app, ["export", str(run), "--out", str(out)])
    assert result.exit_code == 4
    assert "FAILED" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    assert "export" not in read_manifest(run)


@pytest.mark.parametrize("how", ["modified", "added", "deleted", "audit edited"])
def test_refuses_tampered_run(tmp_path: Path, how: str) -> None:
    run = make_run(tmp_path, simulate_cohort(20, 1))
    main = run / "synthetic" / "cohort.csv"
    if how == "modified":
        main.write_text(main.read_text().replace("P0001", "P9999"))
    elif how == "audit edited":  # e.g. someone un-flags a record by hand
        audit = run / "audit.json"
        audit.write_text(audit.read_text().replace('"flagged_synthetic_ids": []', '"x": 1'))
    elif how == "added":
        (run / "synthetic" / "extra.csv").write_text("x\n1\n")
    else:
        (run / "model.pt").unlink()
    out = tmp_path / "out"
    match = {"deleted": "missing", "audit edited": "audit.json .modified"}.get(how, how)
    with pytest.raises(ExportRefused, match=match):
        export_run(run, out)
    assert not out.exists()


def test_refuses_run_without_dp(tmp_path: Path) -> None:
    run = make_run(tmp_path, simulate_cohort(20, 1), dp=False)
    with pytest.raises(ExportRefused, match="without differential privacy"):
        export_run(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_dp_run_exports_only_when_explicitly_allowed(tmp_path: Path) -> None:
    run = make_run(tmp_path, simulate_cohort(20, 1), dp=False)
    export_run(run, tmp_path / "out", allow_non_dp=True)
    datasheet = (tmp_path / "out" / "DATASHEET.md").read_text()
    assert "NOT differentially private" in datasheet
    # the rules the sampler kept are named with how much it repaired
    assert "kept while sampling" in datasheet and "FiO2 10.7% of 2,496" in datasheet


def test_refuses_existing_export_unless_force(tmp_path: Path) -> None:
    run = make_run(tmp_path, simulate_cohort(20, 1))
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(ClinsynthError, match="--force"):
        export_run(run, out)
    assert (out / "old.txt").read_text() == "keep me"
    export_run(run, out, force=True)
    assert not (out / "old.txt").exists() and (out / "manifest.json").is_file()


def test_crash_half_way_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path, simulate_cohort(20, 1))

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_mod, "render_datasheet", boom)
    out = tmp_path / "exports" / "out"
    with pytest.raises(RuntimeError):
        export_run(run, out)
    assert not out.exists()
    assert list((tmp_path / "exports").iterdir()) == []  # no staging folder left behind
    assert "export" not in read_manifest(run)


def test_drops_flagged_rekeys_and_leaks_nothing(tmp_path: Path, leaky_synthetic: Cohort) -> None:
    real_input = tmp_path / f"icu_export_{DATE}.csv"
    real_input.write_text("stand-in for the real file\n")
    run = make_run(tmp_path, leaky_synthetic, flagged=(REAL_ID,), real_data=real_input)
    out = tmp_path / "out"
    result = runner.invoke(app, ["export", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 of 31 dropped" in " ".join(result.output.split())

    texts = {p.name: p.read_text() for p in exported_files(out)}
    assert set(texts) == {"cohort.csv", "manifest.json", "DATASHEET.md"}
    for name, text in texts.items():
        assert "REAL-PATIENT" not in text, name
        assert DATE not in text and real_input.name not in text, name
        assert "P0001" not in text, name  # the run's own synthetic IDs are replaced too
    assert not re.search(r"\d{4}-\d{2}-\d{2}", texts["cohort.csv"])  # no dates in the data

    back = load_cohort(out / "cohort.csv", "icu_sim", enforce_window=False, progress=False)
    assert back.n_patients == 30
    assert all(re.fullmatch(r"SYN\d{5}", pid) for pid in back.patient_ids)
    assert (back.observations["hours"] >= 0).all()
    n = len(UNIQUE_HR)
    for _, hr in back.observations[back.observations["variable"] == "HR"].groupby("patient_id"):
        values = hr["value"].tolist()
        windows = [values[i : i + n] for i in range(len(values) - n + 1)]
        assert UNIQUE_HR not in windows

    manifest = json.loads(texts["manifest.json"])
    assert manifest["records"]["dropped_flagged_too_close_to_real"] == 1
    assert manifest["records"]["exported"] == 30
    for key in ("input", "schema", "config", "seeds", "privacy", "audit", "versions", "files"):
        assert manifest[key], key
    assert manifest["input"]["data_sha256"] == sha256_file(real_input)
    assert "cleaning" not in json.dumps(manifest)  # real-data counts not paid from the budget
    assert manifest["files"] == {
        "DATASHEET.md": sha256_file(out / "DATASHEET.md"),
        "cohort.csv": sha256_file(out / "cohort.csv"),
    }
    assert read_manifest(run)["export"]["dropped_flagged"] == 1


def test_datasheet_says_what_matters(tmp_path: Path) -> None:
    run = make_run(tmp_path, simulate_cohort(12, 3), flagged=("P0002", "P0005"))
    summary = export_run(run, tmp_path / "out")
    assert (summary.n_synthetic, summary.n_dropped, summary.n_exported) == (12, 2, 10)
    sheet = summary.datasheet.read_text()
    for phrase in (
        "synthetic",
        "ε",
        "δ",
        "Prohibited uses",
        "Intended uses",
        "PASSED",
        "2 of 12",
        "membership_dcr_auroc",
        "Lineage",
    ):
        assert phrase in sheet, phrase


@pytest.mark.parametrize("layout", ["icu_sim", "physionet2012", "wide"])
def test_layout_round_trip(tmp_path: Path, layout: str) -> None:
    """Long (hours), long with HH:MM and a separate outcomes file, and wide all read back equal."""
    base = simulate_cohort(15, 5)
    schema = wide_variant(base.schema) if layout == "wide" else load_schema(layout)
    synthetic = with_schema(base, schema)
    run = make_run(tmp_path, synthetic, flagged=("P0003",))
    summary = export_run(run, tmp_path / "out")
    expect_outcomes = schema.layout.outcomes_file
    assert ("outcomes.csv" in summary.files) == expect_outcomes
    back = load_cohort(
        summary.out_dir / "cohort.csv",
        schema,
        outcomes_path=summary.out_dir / "outcomes.csv" if expect_outcomes else None,
        enforce_window=False,
        progress=False,
    )
    kept = [p for p in synthetic.patient_ids if p != "P0003"]
    ids = {old: f"SYN{i:05d}" for i, old in enumerate(kept, start=1)}
    expected = synthetic.subset(kept)
    pd.testing.assert_frame_equal(
        back.statics.sort_index(),
        expected.statics.rename(index=ids).sort_index(),
        check_dtype=False,
    )
    cols = ["patient_id", "hours", "variable"]
    got = back.observations.sort_values(cols).reset_index(drop=True)
    want = (
        expected.observations.assign(patient_id=expected.observations["patient_id"].map(ids))
        .sort_values(cols)
        .reset_index(drop=True)
    )
    tol = 1 / 60 if schema.layout.time_format == "hhmm" else 1e-9
    assert np.allclose(got["hours"], want["hours"], atol=tol)
    assert (got["variable"].to_numpy() == want["variable"].to_numpy()).all()
    assert np.allclose(got["value"], want["value"])
