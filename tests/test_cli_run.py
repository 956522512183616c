"""`clinsynth run`: generate -> audit -> export + review sheets, and exit 4 on a failed audit.

The fast tests stand in fabricated runs for generation and the audit; one end-to-end test trains a
tiny model on a small simulated cohort.
"""

from __future__ import annotations

import functools
import re
import sys
import types
from pathlib import Path

import pytest
import yaml
from factories import flat
from fake_runs import CHECKS, make_run
from typer.testing import CliRunner

from clinsynth.cli import app
from clinsynth.loader import load_cohort
from clinsynth.runs import read_manifest
from clinsynth.simulate import simulate_cohort, write_sample

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


class FakeResult:
    def __init__(self, passed: bool) -> None:
        self.passed = passed
        self.checks = [{**c, "passed": passed or c["family"] != "membership"} for c in CHECKS]


@pytest.fixture
def fake_pipeline(monkeypatch: pytest.MonkeyPatch):
    """Replace generation and auditing by fabrication; returns the calls they received."""
    calls: dict[str, list] = {"generate": [], "audit": []}
    outcome = {"passed": True}

    def generate_run(data_path, schema, out_dir, **kwargs):
        calls["generate"].append((data_path, schema, out_dir, kwargs))
        out_dir = Path(out_dir)
        make_run(
            out_dir.parent, simulate_cohort(12, 2), passed=outcome["passed"], name=out_dir.name
        )
        return out_dir

    def audit_run(run_dir, policy="default"):
        calls["audit"].append((run_dir, policy))
        return FakeResult(outcome["passed"])

    monkeypatch.setitem(
        sys.modules, "clinsynth.generation", types.SimpleNamespace(generate_run=generate_run)
    )
    monkeypatch.setitem(
        sys.modules, "clinsynth.auditing", types.SimpleNamespace(audit_run=audit_run)
    )
    return calls, outcome


def pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", path.read_bytes()))


def test_run_passes_exports_and_draws_sheets(tmp_path: Path, fake_pipeline) -> None:
    calls, _ = fake_pipeline
    out = tmp_path / "runs" / "first"
    args = ["run", "data.csv", "--schema", "icu_sim", "--out", str(out), "--epsilon", "2"]
    result = runner.invoke(
        app, [*args, "--seed", "5", "--policy", "strict", "--review-sheets", "4"]
    )
    assert result.exit_code == 0, result.output
    ((_, schema, _, kwargs),) = calls["generate"]
    assert schema.name == "icu_sim" and kwargs["epsilon"] == 2.0 and kwargs["seed"] == 5
    assert calls["audit"] == [(out, "strict")]
    assert (out / "export" / "manifest.json").is_file()
    assert (out / "export" / "DATASHEET.md").is_file()
    assert pdf_pages(out / "review" / "review_sheets.pdf") == 4
    assert (out / "review_key.csv").is_file()
    text = flat(result.output)
    for phrase in (
        "ε spent = 3.9",
        "membership_dcr_auroc",
        "Audit PASSED",
        "Exported 12",
        str(out / "export"),
        "review-score",
    ):
        assert phrase in text, phrase


def test_run_failed_audit_exits_4_and_keeps_run(tmp_path: Path, fake_pipeline) -> None:
    _, outcome = fake_pipeline
    outcome["passed"] = False
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "data.csv", "--schema", "icu_sim", "--out", str(out)])
    assert result.exit_code == 4, result.output
    text = flat(result.output)
    assert (
        "Audit FAILED (required checks failing: membership_dcr_auroc)" in text
        and "nothing was exported" in text
    )
    assert "Next:" in text and "Traceback" not in text
    assert (out / "manifest.json").is_file()  # kept for inspection
    assert not (out / "export").exists() and not (out / "review").exists()


def test_run_refuses_existing_out_before_training(tmp_path: Path, fake_pipeline) -> None:
    calls, _ = fake_pipeline
    out = tmp_path / "run"
    out.mkdir()
    (out / "something").write_text("x")
    result = runner.invoke(app, ["run", "data.csv", "--schema", "icu_sim", "--out", str(out)])
    assert result.exit_code == 2
    assert "already exists" in flat(result.output) and calls["generate"] == []
    result = runner.invoke(app, ["run", "d.csv", "--schema", "no_such_schema", "--out", "x"])
    assert result.exit_code == 2 and "Unknown schema" in flat(result.output)


def lenient_policy(path: Path) -> Path:
    """The default policy with no check required, so the pipeline reaches export + sheets."""
    policy = yaml.safe_load((REPO / "audits" / "policies" / "default.yaml").read_text())
    policy["name"] = "lenient-test"
    policy["checks"] = {k: {**v, "required": False} for k, v in policy["checks"].items()}
    path.write_text(yaml.safe_dump(policy))
    return path


@pytest.mark.slow
def test_run_end_to_end_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real generation (1 epoch), audit, export and sheets on 500 simulated stays (< 60 s)."""
    import clinsynth.generation as generation

    monkeypatch.setattr(
        generation, "generate_run", functools.partial(generation.generate_run, epochs=1)
    )
    data = tmp_path / "cohort.csv.gz"
    write_sample(data, 500, seed=1)
    out = tmp_path / "run"
    policy = lenient_policy(tmp_path / "lenient.yaml")
    args = ["run", str(data), "--schema", "icu_sim", "--out", str(out), "--n", "60"]
    result = runner.invoke(
        app, [*args, "--policy", str(policy), "--review-sheets", "3"], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest["audit"]["policy"] == "lenient-test" and (out / "audit.html").is_file()
    assert manifest["export"]["exported"] + manifest["export"]["dropped_flagged"] == 60
    exported = load_cohort(out / "export" / "cohort.csv", "icu_sim", enforce_window=False)
    assert exported.n_patients == manifest["export"]["exported"]
    assert pdf_pages(out / "review" / "review_sheets.pdf") == 3
    text = flat(result.output)
    assert "ε spent" in text and "utility_discriminator_auroc" in text
