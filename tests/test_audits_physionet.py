"""The audits on real PhysioNet 2012 stays: real held-out patients pass, time-shuffled ones fail.

Skipped when the data is absent. Sizes are smaller than the benchmark (benchmarks/
audit_physionet.py times 2,000 + 2,000 + 2,000) to keep the suite quick.
"""

from __future__ import annotations

from pathlib import Path

import audit_cases as cases
import numpy as np
import pytest

from audits import run_audits
from clinsynth.loader import load_cohort

PHYSIONET = Path(__file__).resolve().parent.parent.parent / "shared/data/physionet2012"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (PHYSIONET / "set-a.csv.gz").exists(),
        reason=f"PhysioNet 2012 set-a not found in {PHYSIONET}",
    ),
]


@pytest.fixture(scope="module")
def split():
    cohort = load_cohort(
        PHYSIONET / "set-a.csv.gz",
        "physionet2012",
        outcomes_path=PHYSIONET / "Outcomes-a.txt",
        enforce_window=False,
        progress=False,
    )
    ids = np.array(sorted(cohort.patient_ids))
    order = np.random.default_rng(7).permutation(len(ids))
    parts = (order[:1000], order[1000:1500], order[1500:2000])
    return tuple(cohort.subset(np.sort(ids[p])) for p in parts)


def test_real_held_out_stays_pass_the_default_policy(split):
    train, holdout, other = split
    result = run_audits(train, holdout, cases.rekey(other))
    assert result.passed, cases.frame_summary(result)
    # real data has artefacts, but no more than the real training data it is judged against
    assert result.check("plausibility_rule_rate").value > 0


def test_time_shuffled_real_stays_fail_temporal_but_not_marginal_checks(split):
    train, holdout, other = split
    result = run_audits(train, holdout, cases.shuffled_time(other))
    failed = {c.name for c in result.failed_checks}
    assert {"temporal_covariance", "temporal_individual"} <= failed
    assert "marginal_overall" not in failed
    assert not {c for c in failed if c.startswith(("membership", "memorisation"))}
