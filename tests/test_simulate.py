"""The mechanistic simulator: reproducible bytes, plausible values, physiology predicting death."""

from __future__ import annotations

import gzip
import inspect
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import flat
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from clinsynth.cli import app
from clinsynth.commands.simulate import simulate as simulate_command
from clinsynth.grid import to_grid
from clinsynth.simulate import ARTEFACTS_PER_1000, simulate_cohort, write_sample

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_data" / "icu_sim.csv.gz"
SAMPLE_README = REPO / "sample_data" / "README.md"


def _cli_defaults() -> tuple[int, int, Path]:
    params = inspect.signature(simulate_command).parameters
    return params["n"].default, params["seed"].default, params["out"].default


@pytest.fixture(scope="module")
def cohort():
    n, seed, _ = _cli_defaults()
    return simulate_cohort(n, seed)


@pytest.fixture(scope="module")
def sample_file() -> pd.DataFrame:
    if not SAMPLE.exists():
        pytest.fail(f"{SAMPLE} is missing: run `clinsynth simulate` (see sample_data/README.md)")
    return pd.read_csv(SAMPLE, dtype={"patient_id": str})


def _limits(schema, variable: str, hours: float) -> tuple[float, float] | None:
    # at hours 0 a static wins over the same-named variable (Weight), as in the file layout
    field = schema.field(variable) if hours == 0 else schema.variable(variable)
    return field.hard_limits


# ----------------------------------------------------------------------------- reproducibility


def test_committed_sample_matches_the_documented_command(tmp_path):
    n, seed, out = _cli_defaults()
    readme = SAMPLE_README.read_text()
    assert f"clinsynth simulate --n {n} --seed {seed} --out {out}" in readme
    assert out == Path("sample_data/icu_sim.csv.gz")
    fresh = tmp_path / "again.csv.gz"
    write_sample(fresh, n, seed)
    # compare the decompressed content: gzip bytes may differ between zlib builds
    assert gzip.decompress(fresh.read_bytes()) == gzip.decompress(SAMPLE.read_bytes()), (
        "sample file is stale or not deterministic"
    )


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    a, b, c = (tmp_path / f"{k}.csv.gz" for k in "abc")
    write_sample(a, 60, 5)
    write_sample(b, 60, 5)
    write_sample(c, 60, 6)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert simulate_cohort(60, 5).content_hash() != simulate_cohort(60, 6).content_hash()


def test_invalid_size_is_refused():
    with pytest.raises(ValueError):
        simulate_cohort(0, 1)


# ----------------------------------------------------------------------------- data model


def test_cohort_follows_the_data_model(cohort):
    schema = cohort.schema
    assert schema.name == "icu_sim"
    assert list(cohort.statics.columns) == [*schema.static_names, *schema.outcome_names]
    s = cohort.statics
    assert set(s["Gender"].unique()) == {0.0, 1.0}
    assert set(s["ICUType"].unique()) == {0.0, 1.0, 2.0, 3.0}  # category indices
    assert s["Age"].between(15, 110).all()
    assert 0.2 < s["Height"].isna().mean() < 0.7  # like real exports, height is often missing
    obs = cohort.observations
    assert set(obs["variable"]) == set(schema.variable_names)
    assert obs["hours"].gt(0).all() and obs["hours"].le(48).all()
    assert not obs.duplicated(["patient_id", "hours", "variable"]).any()
    assert obs.equals(obs.sort_values(["patient_id", "hours", "variable"], ignore_index=True))


def test_values_inside_hard_limits_at_schema_precision(cohort):
    schema = cohort.schema
    obs = cohort.observations
    for name, values in obs.groupby("variable")["value"]:
        var = schema.variable(name)
        if var.hard_limits:
            lo, hi = var.hard_limits
            assert values.between(lo, hi).all(), name
        np.testing.assert_allclose(values, values.round(var.precision or 0), atol=1e-9)
    for name in ["GCS", "MechVent"]:
        assert (obs.loc[obs["variable"] == name, "value"] % 1 == 0).all()


def test_cross_variable_rules_hold_on_the_grid(cohort):
    grid = to_grid(cohort)
    for rule in cohort.schema.rules:
        if rule.kind == "less_than":
            left, right = grid.variable(rule.left), grid.variable(rule.right)
            both = ~np.isnan(left) & ~np.isnan(right)
            assert both.sum() > 100 and (left[both] < right[both]).all(), rule
        elif rule.kind == "between":
            t, lo, hi = (grid.variable(n) for n in (rule.target, rule.low, rule.high))
            m = ~np.isnan(t) & ~np.isnan(lo) & ~np.isnan(hi)
            assert m.sum() > 100 and ((lo[m] <= t[m]) & (t[m] <= hi[m])).all(), rule
        else:
            when, then = grid.variable(rule.when), grid.variable(rule.then)
            m = (when == rule.equals) & ~np.isnan(then)
            assert m.sum() > 50
            assert ((then[m] >= rule.range[0]) & (then[m] <= rule.range[1])).all(), rule


def test_vitals_change_no_faster_than_the_schema_allows(cohort):
    grid = to_grid(cohort)
    for var in cohort.schema.variables:
        if var.max_rate_per_hour is None:
            continue
        v = grid.variable(var.name)
        step = np.abs(np.diff(v, axis=1))
        assert np.nanmean(step > var.max_rate_per_hour) < 0.001, var.name


# ----------------------------------------------------------------------------- schedules


def test_measurement_schedules_are_realistic(cohort):
    obs = cohort.observations
    n = cohort.n_patients
    per_patient = obs.groupby("variable")["patient_id"].nunique() / n
    assert per_patient["HR"] > 0.95
    assert per_patient["Cholesterol"] < 0.1 and per_patient["TroponinI"] < 0.1
    assert 0.4 < per_patient["SysABP"] < 0.95
    # cuff pressure is routine without an arterial line, an occasional check with one
    counts = obs.groupby(["patient_id", "variable"]).size().unstack(fill_value=0)
    has_line = counts["SysABP"] > 0
    assert counts.loc[has_line, "NISysABP"].median() < 8
    assert counts.loc[~has_line, "NISysABP"].median() > 25
    gaps = obs.sort_values("hours").groupby(["patient_id", "variable"])["hours"].diff()
    median_gap = gaps.groupby(obs["variable"]).median()
    assert 0.5 <= median_gap["HR"] <= 1.5  # vitals roughly hourly
    assert 4 <= median_gap["Creatinine"] <= 24  # labs every 4-24 h
    hr_times = obs.loc[obs["variable"] == "HR", "hours"]
    assert (hr_times % 1).round(2).nunique() > 50  # irregular times, not a fixed clock
    last = obs.groupby("patient_id")["hours"].max()
    short = (last < 40).mean()
    assert 0.02 < short < 0.25  # some early deaths / discharges end the stay


def test_ventilation_episodes_raise_fio2_and_sedate(cohort):
    grid = to_grid(cohort)
    vent = grid.variable("MechVent") == 1
    fio2, gcs = grid.variable("FiO2"), grid.variable("GCS")
    assert 0.3 < vent.any(axis=1).mean() < 0.9
    assert np.nanmean(fio2[vent]) > np.nanmean(np.where(vent, np.nan, fio2)) - 0.05
    assert np.nanmean(fio2[vent]) > 0.35
    assert np.nanmean(gcs[vent]) < np.nanmean(np.where(vent, np.nan, gcs)) - 3


def test_vitals_are_autocorrelated_and_circadian_free_of_dates(cohort):
    grid = to_grid(cohort)
    hr = grid.variable("HR")
    dev = hr - np.nanmean(hr, axis=1, keepdims=True)
    a, b = dev[:, :-1].ravel(), dev[:, 1:].ravel()
    ok = ~np.isnan(a) & ~np.isnan(b)
    assert np.corrcoef(a[ok], b[ok])[0, 1] > 0.4  # AR(1) wander, not white noise
    bp = grid.variable("SysABP"), grid.variable("DiasABP"), grid.variable("MAP")
    m = ~np.isnan(bp[0])
    estimate = (bp[0][m] + 2 * bp[1][m]) / 3
    assert np.abs(bp[2][m] - estimate).mean() < 3  # MAP ≈ (SBP + 2 DBP) / 3


# ----------------------------------------------------------------------------- outcome


def test_mortality_in_range_and_tied_to_severity(cohort):
    death = cohort.statics["In-hospital_death"]
    assert 0.10 <= death.mean() <= 0.20
    obs = cohort.observations

    def per_patient(variable, how):
        values = obs[obs["variable"] == variable].groupby("patient_id")["value"].agg(how)
        return values.groupby(death.reindex(values.index)).median()

    assert per_patient("Lactate", "max")[1] > 1.3 * per_patient("Lactate", "max")[0]
    assert per_patient("MAP", "min")[1] < per_patient("MAP", "min")[0] - 5
    assert per_patient("HR", "mean")[1] > per_patient("HR", "mean")[0] + 5
    assert per_patient("GCS", "min")[1] < per_patient("GCS", "min")[0]
    assert per_patient("Creatinine", "max")[1] > per_patient("Creatinine", "max")[0]


def test_a_classifier_on_the_series_predicts_death(cohort):
    grid = to_grid(cohort)
    v = grid.values
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        features = np.concatenate(
            [np.nanmean(v, 1), np.nanmin(v, 1), np.nanmax(v, 1), grid.statics[:, :5]], axis=1
        )
    features[:, np.isnan(features).all(axis=0)] = 0
    y = cohort.statics["In-hospital_death"].to_numpy()
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(C=0.1))
    proba = cross_val_predict(model, features, y, cv=5, method="predict_proba")[:, 1]
    auroc = roc_auc_score(y, proba)
    assert 0.72 < auroc < 0.95, auroc  # informative but not trivially separable


# ----------------------------------------------------------------------------- the sample file


def test_sample_file_layout(sample_file):
    assert list(sample_file.columns) == ["patient_id", "hours", "variable", "value"]
    first_rows = sample_file[sample_file["hours"] == 0]
    assert set(first_rows["variable"]) == {
        "Age",
        "Gender",
        "Height",
        "ICUType",
        "Weight",
        "In-hospital_death",
    }
    assert set(first_rows.loc[first_rows["variable"] == "ICUType", "value"]) == {1, 2, 3, 4}
    assert sample_file["patient_id"].nunique() == 1000
    assert re.fullmatch(r"P\d{4}", sample_file["patient_id"].iloc[0])


def test_sample_file_artefacts_are_exactly_the_deliberate_ones(sample_file, cohort):
    schema = cohort.schema
    sentinel = sample_file["value"] == -1
    limits = [
        _limits(schema, v, h)
        for v, h in zip(sample_file["variable"], sample_file["hours"], strict=True)
    ]
    lo = np.array([lim[0] if lim else -np.inf for lim in limits])
    hi = np.array([lim[1] if lim else np.inf for lim in limits])
    outside = ~sentinel & ((sample_file["value"] < lo) | (sample_file["value"] > hi))
    duplicated = sample_file.duplicated()
    assert sentinel.sum() == ARTEFACTS_PER_1000["sentinel"]
    assert outside.sum() == ARTEFACTS_PER_1000["zero"]
    assert (sample_file.loc[outside, "value"] == 0).all()
    assert duplicated.sum() == ARTEFACTS_PER_1000["duplicate"]
    # everything else is the clean cohort, row for row
    clean = sample_file[~sentinel & ~outside & ~duplicated]
    series = clean[clean["hours"] > 0].reset_index(drop=True)
    expected = cohort.observations
    sort = ["patient_id", "hours", "variable"]
    series = series.sort_values(sort, ignore_index=True)
    pd.testing.assert_frame_equal(series, expected, check_dtype=False, atol=1e-9)
    statics = clean[clean["hours"] == 0].pivot(index="patient_id", columns="variable")["value"]
    statics["ICUType"] -= 1  # file holds the category value, the cohort its index
    pd.testing.assert_frame_equal(
        statics[cohort.statics.columns].sort_index(),
        cohort.statics.sort_index(),
        check_names=False,
        atol=1e-9,
    )


# ----------------------------------------------------------------------------- CLI


def test_cli_refuses_to_overwrite_without_force(tmp_path):
    runner = CliRunner()
    out = tmp_path / "sim.csv.gz"
    first = runner.invoke(app, ["simulate", "--n", "20", "--seed", "3", "--out", str(out)])
    assert first.exit_code == 0, first.output
    written = out.read_bytes()
    again = runner.invoke(app, ["simulate", "--n", "30", "--seed", "4", "--out", str(out)])
    assert again.exit_code == 2
    assert "already exists" in flat(again.output) and "--force" in flat(again.output)
    assert out.read_bytes() == written
    forced = runner.invoke(
        app, ["simulate", "--n", "30", "--seed", "4", "--out", str(out), "--force"]
    )
    assert forced.exit_code == 0, forced.output
    assert out.read_bytes() != written
    assert not list(tmp_path.glob(".*part"))  # atomic write left nothing behind


def test_loader_reads_the_sample_back_to_the_clean_cohort(cohort):
    loader = pytest.importorskip("clinsynth.loader", reason="loader not built yet")
    loaded = loader.load_cohort(SAMPLE, "icu_sim", enforce_window=False, progress=False)
    assert loaded.content_hash() == cohort.content_hash()
    report = loaded.report
    assert report.total("missing_sentinel") == ARTEFACTS_PER_1000["sentinel"]
    assert report.total("outside_hard_limits") == ARTEFACTS_PER_1000["zero"]
    assert report.total("duplicate_collapsed") == ARTEFACTS_PER_1000["duplicate"]
