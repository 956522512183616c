"""Building blocks of the audits: policy, noise allowances, representation, plausibility rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audits.correlation import auto_sums, bootstrap_correlation, cross_sums, demeaned
from audits.features import scale, stay_features
from audits.memorisation import trajectory_copies
from audits.plausibility import patient_flags
from audits.policy import CHECKS, Policy, load_policy
from audits.result import Measurement
from audits.stats import (
    attack_metrics,
    auroc_null_allowance,
    ks_distance,
    rank_count_allowance,
    tpr_allowance,
)
from clinsynth.cohort import Cohort
from clinsynth.errors import ClinsynthError
from clinsynth.grid import to_grid
from clinsynth.schema import load_schema

SCHEMA = load_schema("icu_sim")


# ------------------------------------------------------------------------------------ policy


@pytest.mark.parametrize("name", ["default", "strict"])
def test_shipped_policies_cover_every_check(name):
    policy = load_policy(name)
    assert set(policy.checks) == set(CHECKS)
    assert policy.name == name


def test_policy_errors_are_readable(tmp_path):
    with pytest.raises(ClinsynthError, match="Unknown audit policy 'lenient'"):
        load_policy("lenient")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nchecks:\n  membership_auroc: {threshold: 0.6, direction: max}\n")
    with pytest.raises(ClinsynthError, match="unknown checks"):
        load_policy(bad)
    bad.write_text("name: x\nchecks:\n  membership_dcr_auroc: {threshold: 0.6, direction: min}\n")
    with pytest.raises(ClinsynthError, match="direction must be 'max'"):
        load_policy(bad)
    with pytest.raises(ClinsynthError, match="does not exist"):
        load_policy(tmp_path / "missing.yaml")


def test_noise_allowance_loosens_but_never_tightens_a_threshold():
    policy = Policy.model_validate(
        {
            "name": "t",
            "checks": {
                "membership_dcr_auroc": {"threshold": 0.6, "direction": "max"},
                "memorisation_dcr_median_ratio": {"threshold": 0.6, "direction": "min"},
            },
        }
    )
    small = policy.judge(Measurement("membership_dcr_auroc", 0.65, noise=0.7))
    large = policy.judge(Measurement("membership_dcr_auroc", 0.65, noise=0.52))
    assert (small.threshold, small.passed) == (0.7, True)
    assert (large.threshold, large.passed) == (0.6, False)
    low = policy.judge(Measurement("memorisation_dcr_median_ratio", 0.55, noise=0.5))
    assert (low.threshold, low.passed) == (0.5, True)
    na = policy.judge(Measurement("membership_dcr_auroc", float("nan"), applicable=False))
    assert na.passed is None
    unlisted = policy.judge(Measurement("utility_tstr_gap", 0.9))
    assert unlisted.passed is None and not unlisted.required


# ------------------------------------------------------------------------------------ stats


def test_ks_distance_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    for _ in range(5):
        a = np.round(rng.normal(size=rng.integers(5, 200)), 1)
        b = np.round(rng.normal(0.4, size=rng.integers(5, 200)), 1)
        assert ks_distance(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic)
    assert np.isnan(ks_distance(np.array([np.nan]), np.array([1.0])))


def test_null_allowances_hold_for_useless_scores():
    """Random scores exceed the allowances at about the nominal rate (alpha = 5% here)."""
    rng = np.random.default_rng(1)
    n_pos, n_neg, alpha, reps = 40, 60, 0.05, 4000
    scores = rng.random((reps, n_pos + n_neg))
    pos, neg = scores[:, :n_pos], scores[:, n_pos:]
    ranks = scores.argsort(axis=1).argsort(axis=1) + 1
    auroc = (ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    k = int(0.1 * n_neg)  # FPR <= 10%: threshold just above the (k+1)-th highest non-member
    cut = np.sort(neg, axis=1)[:, -(k + 1)]
    tpr = (pos > cut[:, None]).mean(axis=1)
    assert 0.02 < np.mean(auroc > auroc_null_allowance(n_pos, n_neg, alpha)) < 0.06
    assert 0.01 < np.mean(tpr > tpr_allowance(0.1, n_pos, n_neg, alpha)) <= 0.05
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    one = attack_metrics(scores[0], y)  # the same statistics as the audits compute
    assert one["auroc"] == pytest.approx(auroc[0]) and one["tpr_at_fpr10"] == tpr[0]
    assert auroc_null_allowance(1000, 1000, 0.001) < auroc_null_allowance(50, 50, 0.001)
    # exact null of "r-th smallest": expected count before the 1st of 100 holdout is ~1%
    assert rank_count_allowance(1000, 100, 1, 0.5) == pytest.approx(0.01, abs=0.005)


def test_bootstrap_correlation_matches_pooled_pearson():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(60, 12, 3))
    z[:, :, 1] = z[:, :, 0] * 0.8 + rng.normal(scale=0.3, size=(60, 12))
    z[rng.random(z.shape) < 0.3] = np.nan
    zc = demeaned(z)
    r, se, patients = bootstrap_correlation(cross_sums(zc, 0), seed=0)
    a, b = zc[:, :, 0].ravel(), zc[:, :, 1].ravel()
    ok = ~np.isnan(a) & ~np.isnan(b)
    assert r[0 * 3 + 1] == pytest.approx(np.corrcoef(a[ok], b[ok])[0, 1])
    assert 0 < se[1] < 0.2 and patients[1] == 60
    r1, _, _ = bootstrap_correlation(auto_sums(zc, 1), seed=0)
    a, b = zc[:, :-1, 2].ravel(), zc[:, 1:, 2].ravel()
    ok = ~np.isnan(a) & ~np.isnan(b)
    assert r1[2] == pytest.approx(np.corrcoef(a[ok], b[ok])[0, 1])


# ------------------------------------------------------------------------------ representation


def _cohort(rows: list[tuple], statics: dict[str, dict] | None = None) -> Cohort:
    obs = pd.DataFrame(rows, columns=["patient_id", "hours", "variable", "value"])
    ids = sorted(set(obs["patient_id"]) | set(statics or {}))
    base = {
        "Age": 60.0,
        "Gender": 1.0,
        "Height": 170.0,
        "ICUType": 2.0,
        "Weight": 80.0,
        "In-hospital_death": 0.0,
    }
    frame = pd.DataFrame([{**base, **(statics or {}).get(i, {})} for i in ids], index=ids)
    return Cohort(SCHEMA, frame, obs)


def test_scaling_uses_public_ranges_only():
    hr = SCHEMA.variable("HR")
    lo, hi = hr.normal_range
    assert scale(np.array([lo, hi, (lo + hi) / 2]), hr) == pytest.approx([-1, 1, 0])
    # a patient's representation does not depend on who else is in the cohort
    a = _cohort([("p1", 1.0, "HR", 80.0), ("p1", 2.0, "HR", 95.0)])
    b = _cohort([("p1", 1.0, "HR", 80.0), ("p1", 2.0, "HR", 95.0), ("p2", 1.0, "HR", 200.0)])
    fa, fb = stay_features(to_grid(a), SCHEMA), stay_features(to_grid(b), SCHEMA)
    assert np.array_equal(fa.values[0], fb.values[0], equal_nan=True)
    names = dict(zip(fa.names, fa.values[0], strict=True))
    assert names["HR:obs_rate"] == pytest.approx(2 / SCHEMA.grid.n_steps)
    assert np.isnan(names["Temp:mean"]) and fa.filled()[0][fa.names.index("Temp:mean")] == 0


def test_trajectory_copies_need_same_steps_and_close_values():
    train = np.full((2, 6), np.nan)
    train[0, [0, 2, 4]] = [0.1, 0.5, 0.3]
    train[1, [1, 2, 3]] = [0.0, 0.2, 0.4]
    query = np.full((4, 6), np.nan)
    query[0, [0, 2, 4]] = [0.11, 0.5, 0.3]  # near copy of row 0
    query[1, [0, 2, 5]] = [0.1, 0.5, 0.3]  # same values, other steps
    query[2, [1, 2, 3]] = [0.0, 0.3, 0.4]  # one value off
    query[3, [1, 2]] = [0.0, 0.2]  # too short to count
    informative, copied = trajectory_copies(train, query, tolerance=0.02, min_points=3)
    assert informative.tolist() == [True, True, True, False]
    assert copied.tolist() == [True, False, False, False]


# ------------------------------------------------------------------------------ plausibility


def test_patient_flags_explain_each_kind_of_issue():
    horizon = SCHEMA.grid.horizon_hours
    cohort = _cohort(
        [
            ("clean", 1.0, "HR", 80.0),
            ("clean", 2.0, "HR", 85.0),
            ("jump", 1.0, "HR", 60.0),
            ("jump", 2.0, "HR", 200.0),
            ("rule", 3.0, "SysABP", 90.0),
            ("rule", 3.0, "DiasABP", 120.0),
            ("late", horizon + 5, "HR", 80.0),
            ("code", 1.0, "MechVent", 0.5),
            ("limit", 1.0, "Temp", 55.0),
        ],
        statics={"code": {"Gender": 3.0}},
    )
    flags = patient_flags(cohort)
    assert flags["clean"] == []
    assert any("HR changes by 140" in m for m in flags["jump"])
    assert any("rule" in m and "DiasABP" in m for m in flags["rule"])
    assert any("outside the stay window" in m for m in flags["late"])
    assert any("MechVent value 0.5" in m for m in flags["code"])
    assert any("Gender = 3" in m for m in flags["code"])
    assert any("Temp 55" in m and "hard limits" in m for m in flags["limit"])
