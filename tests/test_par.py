"""SDV PAR baseline engine, engine registry, and the benchmark's pure helpers (table, split)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clinsynth.cohort import Cohort
from clinsynth.engines import ENGINES, load_engine, make_engine
from clinsynth.engines.par import MISSING, PARBaseline
from clinsynth.errors import ClinsynthError
from clinsynth.export import is_differentially_private
from clinsynth.grid import to_grid
from clinsynth.schema import Schema, parse_schema

REPO = Path(__file__).resolve().parent.parent


def _load_compare():
    spec = importlib.util.spec_from_file_location("bench_compare", REPO / "benchmarks/compare.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


compare = _load_compare()


@pytest.fixture(scope="module")
def schema() -> Schema:
    """Small on purpose: 5 variables on a 12-step grid keep one PAR epoch around a second."""
    return parse_schema(
        {
            "name": "tiny_icu",
            "layout": {
                "id_column": "id",
                "time_column": "t",
                "variable_column": "var",
                "value_column": "val",
            },
            "grid": {"step_hours": 2, "horizon_hours": 24},
            "statics": [
                {"name": "Age", "hard_limits": [15, 100], "precision": 0},
                {"name": "ICUType", "type": "categorical", "categories": [1, 2, 3, 4]},
                {"name": "Weight", "hard_limits": [20, 300], "precision": 1},
            ],
            "outcomes": [{"name": "death", "type": "binary"}],
            "variables": [
                {"name": "HR", "hard_limits": [0, 300], "precision": 0},
                {"name": "Lactate", "hard_limits": [0, 30], "precision": 1, "transform": "log1p"},
                {"name": "Weight", "hard_limits": [20, 300], "precision": 1},
                {"name": "GCS", "type": "integer", "hard_limits": [3, 15]},
                {"name": "MechVent", "type": "binary"},
            ],
        }
    )


def _simulate(schema: Schema, n: int, seed: int) -> Cohort:
    """A random-walk ICU cohort with sparse labs, missing statics and every type of field."""
    rng = np.random.default_rng(seed)
    ids = [f"R{1000 + i}" for i in range(n)]
    death = (rng.random(n) < 0.25).astype(float)
    statics = pd.DataFrame(
        {
            "Age": rng.integers(18, 95, n).astype(float),
            "ICUType": rng.integers(0, 4, n).astype(float),
            "Weight": np.where(rng.random(n) < 0.3, np.nan, rng.normal(80, 15, n).round(1)),
            "death": death,
        },
        index=ids,
    )
    rows = []
    for i, pid in enumerate(ids):
        hr = 80.0 + 15 * death[i]
        for hour in np.arange(0.0, 24.0, 0.5):
            hr = float(np.clip(hr + rng.normal(0, 3), 30, 200))
            if rng.random() < 0.6:
                rows.append((pid, hour, "HR", round(hr)))
            if rng.random() < 0.08:
                rows.append((pid, hour, "Lactate", round(float(rng.lognormal(0.4, 0.5)), 1)))
            if rng.random() < 0.05:
                rows.append((pid, hour, "Weight", round(float(rng.normal(80, 10)), 1)))
            if rng.random() < 0.1:
                rows.append((pid, hour, "GCS", float(rng.integers(3, 16))))
            if rng.random() < 0.15:
                rows.append((pid, hour, "MechVent", float(rng.random() < 0.5)))
    obs = pd.DataFrame(rows, columns=["patient_id", "hours", "variable", "value"])
    return Cohort(schema, statics, obs.sort_values(["patient_id", "hours", "variable"]))


@pytest.fixture(scope="module")
def cohort(schema: Schema) -> Cohort:
    return _simulate(schema, 80, seed=0)


@pytest.fixture(scope="module")
def fitted(schema: Schema, cohort: Cohort) -> PARBaseline:
    return PARBaseline(schema, epochs=1, seed=3).fit(cohort)


# --- conversion ------------------------------------------------------------------------------


def test_table_keeps_unmeasured_as_missing(schema: Schema, cohort: Cohort) -> None:
    table = PARBaseline(schema).to_table(cohort)
    n_steps = schema.grid.n_steps
    assert len(table) == cohort.n_patients * n_steps
    assert not set(cohort.patient_ids) & set(table["sequence_id"])  # real IDs never reach PAR
    grid = to_grid(cohort)
    hr = grid.variable("HR").reshape(-1)
    assert np.array_equal(np.isnan(table["v__HR"].to_numpy(float)), np.isnan(hr))
    vent = table["v__MechVent"]
    assert set(vent) <= {"0", "1", MISSING}
    assert (vent == MISSING).sum() == np.isnan(grid.variable("MechVent")).sum()
    # log1p transform from the schema is applied before PAR sees Lactate
    lac = grid.variable("Lactate").reshape(-1)
    np.testing.assert_allclose(table["v__Lactate"].to_numpy(float), np.log1p(lac))


def test_table_round_trip_reproduces_the_grid(schema: Schema, cohort: Cohort) -> None:
    engine = PARBaseline(schema)
    back = engine.from_table(engine.to_table(cohort), cohort.n_patients, np.random.default_rng(0))
    before, after = to_grid(cohort), to_grid(back)
    np.testing.assert_allclose(after.values, before.values, equal_nan=True, atol=1e-4)
    np.testing.assert_allclose(after.statics, before.statics, equal_nan=True)


# --- fit / sample ----------------------------------------------------------------------------


def test_sample_respects_schema(schema: Schema, cohort: Cohort, fitted: PARBaseline) -> None:
    synth = fitted.sample(40, seed=1)
    assert synth.n_patients == 40
    assert synth.patient_ids[:2] == ["P00001", "P00002"]
    assert not set(synth.patient_ids) & set(cohort.patient_ids)
    assert list(synth.statics.columns) == [*schema.static_names, *schema.outcome_names]
    st = synth.statics
    assert st["ICUType"].dropna().isin(range(4)).all()
    assert st["death"].dropna().isin([0.0, 1.0]).all()
    assert st["Age"].dropna().between(15, 100).all()
    assert (st["Age"].dropna() == st["Age"].dropna().round()).all()
    obs = synth.observations
    assert len(obs) > 0 and set(obs["variable"]) <= set(schema.variable_names)
    assert obs["hours"].between(0, schema.grid.horizon_hours, inclusive="left").all()
    for var in schema.variables:
        values = obs.loc[obs["variable"] == var.name, "value"]
        if var.hard_limits is not None:
            assert values.between(*var.hard_limits).all(), var.name
        decimals = 0 if var.type.value in ("integer", "binary") else var.precision
        np.testing.assert_allclose(values, values.round(decimals), err_msg=var.name)
    assert obs.loc[obs["variable"] == "MechVent", "value"].isin([0.0, 1.0]).all()
    # a measurement pattern, not a full grid: PAR models NaN as "not measured"
    measured = to_grid(synth).mask.mean()
    assert 0.0 < measured < 1.0
    # observations sorted as the data model requires
    key = obs[["patient_id", "hours"]].apply(tuple, axis=1)
    assert key.is_monotonic_increasing


def test_sampling_is_seeded_and_survives_save_load(fitted: PARBaseline, tmp_path: Path) -> None:
    a = fitted.sample(15, seed=7)
    assert fitted.sample(15, seed=7).content_hash() == a.content_hash()
    assert fitted.sample(15, seed=8).content_hash() != a.content_hash()
    path = tmp_path / "model.pt"
    fitted.save(path)
    again = load_engine("par", path)
    assert again.sample(15, seed=7).content_hash() == a.content_hash()


def test_fit_is_seeded_and_reports_each_epoch(schema: Schema, cohort: Cohort) -> None:
    small = cohort.subset(cohort.patient_ids[:30])
    calls: list[tuple] = []
    one = PARBaseline(schema, epochs=2, seed=3).fit(small, progress=lambda *a: calls.append(a))
    two = PARBaseline(schema, epochs=2, seed=3).fit(small)
    assert one.sample(10, seed=1).content_hash() == two.sample(10, seed=1).content_hash()
    assert [c[:2] for c in calls] == [(1, 2), (2, 2)]  # generator's (done, total, loss, eps)
    assert all(math.isfinite(c[2]) and c[3] is None for c in calls)


def test_privacy_report_says_not_private(fitted: PARBaseline) -> None:
    report = fitted.privacy_report()
    assert report["differentially_private"] is False
    assert math.isinf(report["epsilon"])
    assert report["epochs"] == 1 and report["n_train"] == 80
    assert not is_differentially_private(report)  # the export gate refuses PAR runs
    assert is_differentially_private({"dp": True, "epsilon": 4.0})


def test_errors_are_user_facing(schema: Schema, tmp_path: Path) -> None:
    with pytest.raises(ClinsynthError):
        PARBaseline(schema).sample(5)
    with pytest.raises(ClinsynthError):
        PARBaseline(schema, epochs=0)
    with pytest.raises(ClinsynthError):
        PARBaseline.load(tmp_path / "absent.pt")
    with pytest.raises(ClinsynthError, match="Unknown engine"):
        make_engine("ctgan", schema)


def test_registry_builds_par_and_drops_dp_options(schema: Schema) -> None:
    assert set(ENGINES) >= {"clinsynth", "par"}
    engine = make_engine("par", schema, seed=5, epochs=2, epsilon=4.0, batch_size=64)
    assert isinstance(engine, PARBaseline)
    assert (engine.seed, engine.epochs) == (5, 2)
    assert engine.ignored_options == ["batch_size", "epsilon"]
    assert engine.privacy_report()["ignored_options"] == ["batch_size", "epsilon"]


def test_audits_accept_par_output(
    schema: Schema, cohort: Cohort, fitted: PARBaseline, tmp_path: Path
) -> None:
    """What a PAR run directory goes through: writer -> loader (clean) -> full audit suite."""
    audits = pytest.importorskip("audits")
    if not hasattr(audits, "run_audits"):
        pytest.skip("audits.run_audits is not built yet (audits engineer); PAR output unchecked")
    from clinsynth.loader import load_cohort
    from clinsynth.writer import write_cohort

    synthetic = fitted.sample(40, seed=2)
    main = write_cohort(synthetic, tmp_path)[0]
    reread = load_cohort(main, schema, enforce_window=False, progress=False)
    assert not reread.report.counts  # nothing the loader had to clean or drop
    np.testing.assert_allclose(to_grid(reread).values, to_grid(synthetic).values, equal_nan=True)
    train, holdout = cohort.split(0.5, seed=0)
    result = audits.run_audits(train, holdout, reread, loader_report=reread.report)
    assert result.checks
    assert isinstance(result.passed, bool)


# --- benchmark helpers -------------------------------------------------------------------------


def _check(name, family, value, passed, required=True, threshold=0.6, policy=None):
    return {
        "name": name,
        "family": family,
        "value": value,
        "threshold": threshold,  # applied (the audit may widen the policy's for sampling noise)
        "policy_threshold": threshold if policy is None else policy,
        "direction": "min" if "ratio" in name else "max",
        "passed": passed,
        "required": required,
    }


def _stub_rows() -> list[dict]:
    ours = [
        _check("membership_dcr_auroc", "membership", 0.52, True),
        _check("temporal_covariance", "temporal", 0.10, True, threshold=0.2),
        _check("utility_tstr_gap", "utility", 0.03, True, threshold=0.1),
        _check(
            "memorisation_dcr_median_ratio", "memorisation", 0.9, True, threshold=0.5, policy=0.6
        ),
    ]
    par = [
        _check("membership_dcr_auroc", "membership", 0.71, False),
        _check("temporal_covariance", "temporal", 0.25, False, required=False, threshold=0.2),
        _check("utility_tstr_gap", "utility", float("nan"), None, threshold=0.1),
        _check(
            "memorisation_dcr_median_ratio", "memorisation", 0.4, False, threshold=0.55, policy=0.6
        ),
    ]
    return [
        {"row": "eps4", "label": "clinsynth ε=4", "epsilon": 4.0, "epochs": 30, "train_s": 60.0,
         "sample_s": 2.5, "peak_rss_mb": 812.4, "checks": ours, "passed": True},
        {"row": "par", "label": "SDV PAR", "epsilon": math.inf, "epochs": 128, "train_s": 1600.0,
         "sample_s": 450.0, "peak_rss_mb": 2048.0, "checks": par, "passed": False},
        {"row": "ceiling", "label": "real (ceiling)", "checks": ours[:1], "passed": True},
        {"row": "nodp", "label": "no DP", "error": "RuntimeError: boom\ntrace"},
    ]  # fmt: skip


def _cells(table: str, measure: str) -> list[str]:
    line = next(x for x in table.splitlines() if f"| {measure} |" in x)
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_build_table_layout_and_marks() -> None:
    table = compare.build_table(_stub_rows())
    lines = table.strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["family", "measure", "threshold", "clinsynth ε=4", "SDV PAR",
                      "real (ceiling)", "no DP"]  # fmt: skip
    assert all(line.count("|") == len(header) + 1 for line in lines)
    assert _cells(table, "training time (s)")[3:] == ["60.0", "1600.0", "—", "—"]
    assert _cells(table, "peak memory (MB)")[3:] == ["812", "2,048", "—", "—"]
    assert _cells(table, "ε (privacy budget)")[3:] == ["4.000", "∞ (no DP)", "—", "—"]
    auroc = _cells(table, "`membership_dcr_auroc`")
    assert auroc[:3] == ["membership", "`membership_dcr_auroc`", "≤ 0.600"]
    assert auroc[3:] == ["0.520 ✓", "0.710 ✗", "0.520 ✓", "—"]
    assert _cells(table, "`temporal_covariance`")[3:5] == ["0.100 ✓", "0.250 ⚠"]
    assert _cells(table, "`utility_tstr_gap`")[2:5] == ["≤ 0.100", "0.030 ✓", "n/a"]
    ratio = _cells(table, "`memorisation_dcr_median_ratio`")
    assert ratio[2:] == ["≥ 0.600 (widened per row)", "0.900 ✓", "0.400 ✗", "—", "—"]
    one = compare.build_table(_stub_rows()[:1])
    assert _cells(one, "`memorisation_dcr_median_ratio`")[2] == "≥ 0.500 (policy 0.600)"
    verdict = _cells(table, "audit (required checks)")[3:]
    assert verdict[:3] == ["**PASS**", "**FAIL**", "**PASS**"]
    assert verdict[3] == "error: RuntimeError: boom"
    # checks grouped by family in the suite's order
    names = ("membership_dcr_auroc", "temporal_covariance", "utility_tstr_gap",
             "memorisation_dcr_median_ratio")  # fmt: skip
    order = [_cells(table, f"`{n}`")[0] for n in names]
    assert order == ["membership", "temporal", "utility", "memorisation"]
    assert compare.build_table([]) == "_no rows_\n"


def test_goal_lines_judge_the_issue_goals() -> None:
    goals = compare.goal_lines(_stub_rows())
    assert goals[0].startswith("- ✓ better than PAR on temporal")
    assert goals[1].startswith("- ✗ better than PAR on utility")  # PAR's value was NaN
    assert goals[2].startswith("- ✓ membership-inference AUROC") and "0.020" in goals[2]
    assert goals[3] == "- ✓ ≥ 5× less training time than PAR: 26.7×"
    rows = _stub_rows()
    rows[0]["train_s"] = 400.0
    assert compare.goal_lines(rows)[3].startswith("- ✗")
    assert "not evaluated" in compare.goal_lines(rows[1:])[0]


def test_floor_shuffle_keeps_marginals_and_hides_ids(cohort: Cohort) -> None:
    floor = compare.shuffle_per_variable(cohort, seed=1)
    assert floor.n_patients == cohort.n_patients
    assert not set(floor.patient_ids) & set(cohort.patient_ids)
    for column in cohort.statics.columns:
        a = np.sort(cohort.statics[column].to_numpy())
        np.testing.assert_array_equal(np.sort(floor.statics[column].to_numpy()), a)
    before = cohort.observations.groupby("variable")["value"].apply(sorted)
    after = floor.observations.groupby("variable")["value"].apply(sorted)
    pd.testing.assert_series_equal(before, after)
    # joint structure is gone: HR trajectories no longer sit with their patient's outcome
    assert not np.array_equal(floor.statics["death"].to_numpy(), cohort.statics["death"].to_numpy())
    assert compare.shuffle_per_variable(cohort, 1).content_hash() == floor.content_hash()


def test_split_real_is_disjoint_and_seeded(cohort: Cohort) -> None:
    train, holdout, reference = compare.split_real(cohort, 40, 30, seed=0)
    assert (train.n_patients, holdout.n_patients, reference.n_patients) == (40, 15, 15)
    sets = [set(c.patient_ids) for c in (train, holdout, reference)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    again = compare.split_real(cohort, 40, 30, seed=0)
    assert again[0].patient_ids == train.patient_ids
    with pytest.raises(ClinsynthError):
        compare.split_real(cohort, 60, 30, seed=0)


def test_generate_engine_par_makes_a_run_the_audit_and_export_gate_accept(
    schema: Schema, tmp_path: Path
) -> None:
    """`clinsynth generate --engine par`: a run directory marked non-DP that audits accept."""
    from typer.testing import CliRunner

    from clinsynth.cli import app
    from clinsynth.runs import read_manifest
    from clinsynth.writer import write_cohort

    schema_file = tmp_path / "tiny.yaml"
    schema_file.write_text(__import__("yaml").safe_dump(schema.model_dump(mode="json")))
    data = write_cohort(_simulate(schema, 500, seed=4), tmp_path / "real")[0]
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["generate", str(data), "--schema", str(schema_file), "--out", str(run),
         "--engine", "par", "--epochs", "1", "--n", "30"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = read_manifest(run)
    assert manifest["config"]["engine"] == "par"
    assert not is_differentially_private(manifest["privacy"])

    audited = runner.invoke(app, ["audit", str(run)])
    assert audited.exit_code in (0, 4), audited.output  # a verdict, not an error
    assert (run / "audit.json").is_file() and (run / "audit.html").is_file()
    refused = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "export")])
    assert refused.exit_code != 0 and not (tmp_path / "export").exists()


def test_kept_rows_are_reused_only_with_the_same_settings_and_clean_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {"seed": 0, "par_epochs": 128, "n_train": 2000}
    monkeypatch.setattr(compare, "_code_version", lambda name: "abc123")
    compare._keep_row(str(tmp_path), "par", {"row": "par", "settings": settings, "x": 1})
    assert compare._kept_row(str(tmp_path), "par", settings)["x"] == 1
    assert compare._kept_row(str(tmp_path), "par", {**settings, "seed": 1}) is None
    assert compare._kept_row(str(tmp_path), "eps4", settings) is None  # never kept
    assert compare._kept_row(None, "par", settings) is None  # no folder: always re-run
    monkeypatch.setattr(compare, "_code_version", lambda name: "def456")  # engine code changed
    assert compare._kept_row(str(tmp_path), "par", settings) is None
    monkeypatch.setattr(compare, "_code_version", lambda name: "abc123+uncommitted")
    assert compare._kept_row(str(tmp_path), "par", settings) is None
