"""The model-collapse experiment: its measures, its lineage accounting, and an end-to-end run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import flat, make_cohort, make_schema
from typer.testing import CliRunner

from clinsynth.cli import app
from clinsynth.collapse import CollapseConfig, combine, split_real, tail_coverage, variance_ratio
from clinsynth.collapse.experiment import _account
from clinsynth.lineage import SyntheticDataRefused, lineage_id, make_marker, stamp
from clinsynth.simulate import simulate_cohort
from clinsynth.writer import write_cohort

runner = CliRunner()


def test_tail_coverage_sees_vanishing_tails() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=20_000)
    assert tail_coverage(real, rng.normal(size=20_000), 0.05) > 0.9
    narrowed = tail_coverage(real, 0.6 * rng.normal(size=20_000), 0.05)
    assert narrowed < 0.3
    assert tail_coverage(real, 3.0 * rng.normal(size=20_000), 0.05) == 1.0  # capped at 1
    assert tail_coverage(real, np.array([np.nan]), 0.05) == 0.0
    assert np.isnan(tail_coverage(real[:5], real, 0.05))


def test_variance_ratio() -> None:
    rng = np.random.default_rng(1)
    real = rng.normal(size=50_000)
    assert variance_ratio(real, 0.5 * rng.normal(size=50_000)) == pytest.approx(0.25, rel=0.05)
    assert variance_ratio(real, real) == pytest.approx(1.0)


def test_splits_are_disjoint() -> None:
    cohort = make_cohort(100, make_schema(), seed=0)
    holdout, initial, pool = split_real(cohort, CollapseConfig())
    sets = [set(c.patient_ids) for c in (holdout, initial, pool)]
    assert sum(map(len, sets)) == 100 and len(set.union(*sets)) == 100
    assert holdout.n_patients == 20


def test_training_sets_go_through_lineage_accounting() -> None:
    schema = make_schema()
    real = make_cohort(30, schema, seed=1)
    synth = stamp(make_cohort(70, schema, seed=2), make_marker(lineage_id("g1"), 2))
    mixed = combine([("s:", synth), ("r:", real)])
    assert mixed.n_patients == 100  # same ids in both parts, kept apart by the prefixes
    assert _account(mixed, 0.7, "mixed") == 3  # depth of a model trained on depth-2 data
    with pytest.raises(SyntheticDataRefused):
        _account(mixed, 0.69, "mixed")
    with pytest.raises(SyntheticDataRefused):
        _account(synth, 0.0, "generation 0")


@pytest.mark.slow
def test_experiment_end_to_end_on_a_tiny_simulated_cohort(tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["collapse", "--simulate", "100", "--generations", "2", "--epochs", "1",
            "--hidden", "8", "--blocks", "1", "--mixtures", "1", "--batch-size", "50",
            "--no-dp", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "collapse.csv")
    assert sorted(zip(table["arm"], table["generation"], strict=True)) == [
        (arm, g) for arm in ("mixed", "synthetic") for g in (0, 1, 2)
    ]
    assert (table["depth"] == table["generation"] + 1).all()
    later = table[table["generation"] > 0].set_index("arm")["train_synthetic_fraction"]
    assert (later["synthetic"] == 1.0).all() and (later["mixed"] == 0.7).all()
    assert (table.loc[table["generation"] == 0, "train_synthetic_fraction"] == 0).all()
    measures = ["tail_coverage", "variance_ratio", "autocorrelation_error", "tstr_auroc"]
    assert table["outcome_rate"].between(0, 1).all()
    assert table[measures].notna().all().all()
    assert table["tail_coverage"].between(0, 1).all()
    variables = pd.read_csv(out / "collapse_variables.csv")
    assert set(variables["variable"]) <= set(simulate_cohort(1, 0).schema.variable_names)
    assert (out / "collapse.png").stat().st_size > 10_000
    md = (out / "collapse.md").read_text()
    assert "clinsynth collapse --simulate 100" in md and "| synthetic | 2 | 3 |" in md
    again = runner.invoke(app, args)
    assert again.exit_code != 0 and "already exists" in flat(again.output)


def test_collapse_refuses_a_synthetic_starting_cohort(tmp_path: Path) -> None:
    cohort = simulate_cohort(30, 0)
    files = write_cohort(stamp(cohort, make_marker(lineage_id("x"), 1)), tmp_path)
    result = runner.invoke(
        app,
        ["collapse", "--data", str(files[0]), "--schema", "icu_sim", "--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 3
    assert "made by clinsynth" in " ".join(result.output.split())
    assert not (tmp_path / "r").exists()
