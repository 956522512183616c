"""The real PhysioNet 2012 set-a through the shipped schema (skipped when the data is absent)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from factories import PHYSIONET, PHYSIONET_SET_A

from clinsynth.errors import CohortRefused
from clinsynth.loader import load_cohort
from clinsynth.schema import load_schema

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not PHYSIONET_SET_A.exists(), reason=f"PhysioNet 2012 set-a not found at {PHYSIONET}"
    ),
]


@pytest.fixture(scope="module")
def raw():
    return pd.read_csv(PHYSIONET_SET_A, dtype={"RecordID": str, "Time": str, "Parameter": str})


@pytest.fixture(scope="module")
def loaded():
    start = time.perf_counter()
    cohort = load_cohort(PHYSIONET_SET_A, "physionet2012", subsample=2000, progress=False)
    return cohort, time.perf_counter() - start


def test_full_set_a_is_refused_without_subsample():
    with pytest.raises(CohortRefused, match=r"3,99\d patients after cleaning.*--subsample 2000"):
        load_cohort(PHYSIONET_SET_A, "physionet2012", progress=False)


def test_subsample_2000_loads_quickly_with_outcomes(loaded):
    cohort, seconds = loaded
    assert cohort.n_patients == 2000
    assert cohort.provenance["n_patients"]["in_file"] == 4000
    assert cohort.provenance["outcomes"]["path"].endswith("Outcomes-a.txt")
    assert seconds < 20
    outcomes = pd.read_csv(PHYSIONET / "Outcomes-a.txt", dtype={"RecordID": str})
    truth = outcomes.set_index("RecordID").loc[cohort.patient_ids, "In-hospital_death"]
    assert (cohort.statics["In-hospital_death"].to_numpy() == truth.to_numpy()).all()


def test_bp_zeros_and_other_impossible_values_are_counted(loaded, raw):
    cohort, _ = loaded
    schema = load_schema("physionet2012")
    counts = cohort.report.counts
    for name in ("SysABP", "DiasABP", "MAP"):
        low, high = schema.variable(name).hard_limits
        values = raw.loc[raw.Parameter == name, "Value"]
        expected = int(((values < low) | (values > high)).sum())
        assert counts[("outside_hard_limits", name)] == expected
    zeros = int(((raw.Parameter == "DiasABP") & (raw.Value == 0)).sum())
    assert zeros > 0 and counts[("outside_hard_limits", "DiasABP")] >= zeros
    assert counts[("missing_sentinel", "Height")] > 0
    assert cohort.report.total("duplicate_collapsed") > 0


def test_weight_descriptor_is_static_and_later_weights_are_observations(loaded, raw):
    cohort, _ = loaded
    weights = raw[raw.Parameter == "Weight"]
    at_start = weights[weights.Time == "00:00"].set_index("RecordID")["Value"]
    ids = [p for p in cohort.patient_ids if 20 <= at_start.get(p, -1) <= 400][:50]
    assert np.allclose(cohort.statics.loc[ids, "Weight"], at_start.loc[ids])
    obs = cohort.observations
    assert (obs.loc[obs.variable == "Weight", "hours"] > 0).all()
    assert not obs.variable.isin(["RecordID", "Age", "Gender"]).any()
