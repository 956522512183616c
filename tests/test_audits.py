"""Each audit family on a case built to fail it and on real held-out patients (built to pass).

Simulated ICU cohorts (clinsynth.simulate): 250 training members, 250 held-out non-members and
250 other patients from which every "synthetic" case is derived (tests/audit_cases.py).
"""

from __future__ import annotations

import json
from functools import cache

import audit_cases as cases
import pytest

from audits import AuditResult, patient_flags, run_audits
from audits.report import write_html
from clinsynth.cohort import Cohort
from clinsynth.errors import ClinsynthError

N_EACH = 250


@cache
def cohorts() -> tuple[Cohort, Cohort, Cohort]:
    return cases.three_way(N_EACH, seed=11)


@cache
def synthetic(case: str) -> Cohort:
    train, _, other = cohorts()
    make = {
        "real": lambda: cases.rekey(other),
        "copy": lambda: cases.copy_of(train),
        "noise": lambda: cases.with_noise(train),
        "shuffled": lambda: cases.shuffled_time(other),
        "limits": lambda: cases.beyond_limits(other),
        "labels": lambda: cases.shuffled_labels(other),
        "independent": lambda: cases.independent_noise(other),
    }[case]
    return make()


@cache
def audited(case: str) -> AuditResult:
    train, holdout, _ = cohorts()
    return run_audits(train, holdout, synthetic(case))


def failed(result: AuditResult) -> set[str]:
    return {c.name for c in result.failed_checks}


def test_real_held_out_patients_pass_every_check():
    result = audited("real")
    assert result.passed, cases.frame_summary(result)
    assert failed(result) == set()
    assert len(result.flagged_synthetic_ids) <= 0.05 * N_EACH
    assert result.check("memorisation_dcr_median_ratio").value == pytest.approx(1.0, abs=0.2)
    assert result.check("membership_dcr_auroc").value == pytest.approx(0.5, abs=0.1)


def test_copy_of_training_set_fails_membership_and_memorisation():
    result = audited("copy")
    assert not result.passed
    assert {
        "membership_dcr_auroc",
        "membership_dcr_tpr_at_fpr01",
        "memorisation_dcr_median_ratio",
        "memorisation_nndr_ratio",
        "memorisation_exact_copy_rate",
        "memorisation_near_copy_rate",
        "memorisation_trajectory_copy_excess",
    } <= failed(result)
    assert result.check("memorisation_dcr_median_ratio").value == pytest.approx(0.0, abs=1e-6)
    assert result.check("memorisation_exact_copy_rate").value == 1.0
    assert result.check("membership_dcr_auroc").value > 0.95
    assert set(result.flagged_synthetic_ids) == set(synthetic("copy").patient_ids)
    # the copy is perfectly faithful: fidelity and temporal checks cannot tell
    assert not {"marginal_overall", "temporal_covariance"} & failed(result)


def test_training_records_with_small_noise_fail_memorisation():
    result = audited("noise")
    assert {
        "memorisation_dcr_median_ratio",
        "memorisation_nndr_ratio",
        "memorisation_near_copy_rate",
    } <= failed(result)
    assert result.check("memorisation_exact_copy_rate").value == 0.0  # no longer identical...
    assert result.check("memorisation_dcr_median_ratio").value < 0.5  # ...but far too close
    assert len(result.flagged_synthetic_ids) > 0.5 * N_EACH


def test_shuffled_time_steps_fail_temporal_checks_while_marginals_pass():
    result = audited("shuffled")
    assert {"temporal_covariance", "temporal_individual", "temporal_measurement"} <= failed(result)
    assert result.check("marginal_overall").passed
    table = result.tables["temporal"]
    hr = table[(table["variable"] == "HR") & (table["structure"] == "covariance")]
    assert hr["passed"].eq(False).any()  # the report can say *which* variable broke
    marginal = result.tables["marginal"]
    assert marginal.loc[marginal["variable"] == "HR", "passed"].item() is True


def test_values_beyond_hard_limits_fail_plausibility():
    result = audited("limits")
    assert "plausibility_hard_limit_rate" in failed(result)
    assert result.check("plausibility_hard_limit_rate").value == pytest.approx(0.05, abs=0.02)
    flags = patient_flags(synthetic("limits"))
    assert set(flags) == set(synthetic("limits").patient_ids)
    flagged = [msgs for msgs in flags.values() if msgs]
    assert len(flagged) > 0.5 * N_EACH
    assert any("outside the hard limits" in m for msgs in flagged for m in msgs)
    assert audited("real").check("plausibility_hard_limit_rate").value == 0.0


def test_shuffled_outcome_labels_fail_train_on_synthetic_test_on_real():
    result = audited("labels")
    assert failed(result) == {"utility_tstr_gap"}
    assert result.check("utility_tstr_gap").value > 0.2
    assert result.tables["utility_outcomes"]["trtr"].iloc[0] > 0.7


def test_independent_noise_fails_the_discriminator_and_marginals():
    result = audited("independent")
    assert {"utility_discriminator_auroc", "marginal_overall"} <= failed(result)
    assert result.check("utility_discriminator_auroc").value > 0.95
    assert audited("real").check("utility_discriminator_auroc").value < 0.7


def test_same_inputs_and_seed_give_the_same_result():
    train, holdout, _ = cohorts()
    again = run_audits(train, holdout, synthetic("real"))
    assert json.dumps(again.to_dict()) == json.dumps(audited("real").to_dict())


def test_json_and_html_name_no_real_patient(tmp_path):
    train, holdout, _ = cohorts()
    real_ids = set(train.patient_ids) | set(holdout.patient_ids)
    for case in ("copy", "shuffled"):
        result = audited(case)
        text = json.dumps(result.to_dict())
        path = write_html(result, tmp_path / f"{case}.html")
        page = path.read_text()
        assert not [i for i in real_ids if f'"{i}"' in text or f">{i}<" in page]
        assert result.verdict.upper() in page.upper()
        assert page.count("data:image/png;base64,") >= 5
    assert 'class="bad"' in (tmp_path / "shuffled.html").read_text()  # failing cells highlighted


def test_user_supplied_reference_population_is_used():
    train, holdout, other = cohorts()
    result = run_audits(train, holdout, synthetic("real"), reference=other)
    assert result.summary["membership"]["reference"] == "user-supplied"
    assert result.summary["membership"]["n_nonmembers_scored"] == N_EACH  # whole holdout scored


def test_strict_policy_passes_real_data_and_is_tighter():
    train, holdout, _ = cohorts()
    strict = run_audits(train, holdout, synthetic("real"), policy="strict")
    assert strict.passed, cases.frame_summary(strict)
    default = audited("real")
    for check in strict.checks:
        tight, base = check.policy_threshold, default.check(check.name).policy_threshold
        assert (tight <= base) if check.direction == "max" else (tight >= base), check.name


def test_refuses_cohorts_of_different_schemas_or_too_small():
    train, holdout, other = cohorts()
    with pytest.raises(ClinsynthError, match="at least"):
        run_audits(train, holdout, other.subset(other.patient_ids[:5]))
    from clinsynth.schema import load_schema

    pn = load_schema("physionet2012")
    shrunk = pn.model_copy(update={"variables": pn.variables[:3]})
    odd = Cohort(shrunk, other.statics.copy(), other.observations.copy())
    with pytest.raises(ClinsynthError, match="differ"):
        run_audits(train, holdout, odd)
