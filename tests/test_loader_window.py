"""The 500..2,000 patient window and the seeded subsample."""

from __future__ import annotations

import pytest
from factories import make_schema, many_patients_file

from clinsynth.errors import ClinsynthError, CohortRefused
from clinsynth.loader import load_cohort


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("window")
    return {n: many_patients_file(folder / f"c{n}.csv", n) for n in (499, 500, 2000, 2001)}


def load(path, **kw):
    return load_cohort(path, make_schema(), progress=False, **kw)


def test_499_patients_are_refused(files):
    with pytest.raises(CohortRefused, match="499 patients after cleaning; below 500 a generator"):
        load(files[499])


def test_500_and_2000_patients_are_accepted(files):
    assert load(files[500]).n_patients == 500
    assert load(files[2000]).n_patients == 2000


def test_2001_patients_need_a_subsample(files):
    with pytest.raises(CohortRefused, match=r"2,001 patients .* Pass --subsample 2000"):
        load(files[2001])


def test_2001_with_subsample_is_seeded_and_recorded(files):
    cohort = load(files[2001], subsample=2000, seed=7)
    assert cohort.n_patients == 2000
    assert set(cohort.observations.patient_id) == set(cohort.patient_ids)
    prov = cohort.provenance
    assert (prov["subsample"], prov["subsample_seed"]) == (2000, 7)
    assert prov["n_patients"] == {"in_file": 2001, "after_cleaning": 2001, "loaded": 2000}
    assert any("Subsampled 2,000 of 2,001 patients (seed 7)" in n for n in cohort.report.notes)
    again = load(files[2001], subsample=2000, seed=7)
    other = load(files[2001], subsample=2000, seed=8)
    assert again.patient_ids == cohort.patient_ids
    assert other.patient_ids != cohort.patient_ids


def test_window_counts_patients_after_cleaning(tmp_path):
    path = many_patients_file(tmp_path / "c.csv", 500)
    text = path.read_text().splitlines()
    # the first patient's HR values become impossible → no observations → 499 patients
    text[3] = text[3].replace(",80", ",0")
    text[4] = text[4].replace(",80", ",0")
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(CohortRefused, match="499 patients"):
        load(path)


@pytest.mark.parametrize("n", [499, 2001])
def test_subsample_must_be_inside_the_window(files, n):
    with pytest.raises(ClinsynthError, match=f"--subsample {n} is outside"):
        load(files[2001], subsample=n)


def test_enforce_window_false_skips_the_window(files):
    assert load(files[499], enforce_window=False).n_patients == 499
    assert load(files[500], enforce_window=False, subsample=10).n_patients == 10
