"""The patient-count window: 500..2,000 patients, larger cohorts only through a seeded subsample.

Below 500 patients a sequence generator cannot learn realistic trajectories under a useful privacy
budget; above 2,000 training time on a laptop CPU and the audits' cost grow past what the tool is
designed for, so a larger cohort is subsampled explicitly (and recorded) rather than silently.
"""

from __future__ import annotations

import numpy as np

from clinsynth.errors import ClinsynthError, CohortRefused

MIN_PATIENTS = 500
MAX_PATIENTS = 2000


def check_subsample(subsample: int | None) -> None:
    if subsample is not None and not MIN_PATIENTS <= subsample <= MAX_PATIENTS:
        raise ClinsynthError(
            f"--subsample {subsample} is outside the supported window: choose a number of "
            f"patients between {MIN_PATIENTS} and {MAX_PATIENTS:,}."
        )


def check_window(n_patients: int, subsample: int | None, source: str) -> None:
    """Refuse cohorts outside the window (counted in patients, after cleaning)."""
    if n_patients < MIN_PATIENTS:
        raise CohortRefused(
            f"{source} has {n_patients:,} patients after cleaning; below {MIN_PATIENTS} a "
            "generator produces unrealistic data and the privacy audits have too little to "
            "compare against. Use a larger cohort (see the cleaning report from `clinsynth "
            "validate` for patients that were dropped)."
        )
    if n_patients > MAX_PATIENTS and subsample is None:
        raise CohortRefused(
            f"{source} has {n_patients:,} patients after cleaning; clinsynth works with at most "
            f"{MAX_PATIENTS:,}. Pass --subsample {MAX_PATIENTS} (optionally --seed N) to train on "
            "a seeded random subsample; it is recorded in the run manifest."
        )


def subsample_ids(patient_ids: list[str], n: int, seed: int) -> list[str]:
    """``n`` of ``patient_ids`` drawn with ``numpy.random.default_rng(seed)``, in sorted order."""
    ids = np.array(sorted(patient_ids), dtype=object)
    chosen = np.random.default_rng(seed).choice(len(ids), size=n, replace=False)
    return list(ids[np.sort(chosen)])
