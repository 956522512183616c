"""Loader: data model coding, every cleaning rule and its count, layouts and time formats."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from factories import UNITS, make_schema, write_long_rows

from clinsynth.errors import ClinsynthError
from clinsynth.loader import load_cohort
from clinsynth.schema import parse_schema


def load(path, schema, **kw):
    return load_cohort(path, schema, enforce_window=False, progress=False, **kw)


def obs_of(cohort, pid, variable):
    o = cohort.observations
    sel = o[(o.patient_id == pid) & (o.variable == variable)]
    return list(zip(sel.hours, sel.value, strict=True))


BASIC = [
    ("a", "0", "Age", "70"),
    ("a", "0", "Sex", "1"),
    ("a", "0", "Unit", "CCU"),
    ("a", "0", "Weight", "80.5"),
    ("a", "0", "Death", "0"),
    ("a", "1.5", "HR", "88"),
    ("a", "1.5", "GCS", "15"),
    ("a", "2", "Weight", "81.25"),
    ("a", "3", "Vent", "1"),
    ("b", "0", "Age", "45"),
    ("b", "0", "Unit", "MICU"),
    ("b", "0", "Death", "1"),
    ("b", "0.5", "HR", "101"),
    ("b", "0.5", "Temp", "38.4"),
]


def test_long_file_gives_the_documented_data_model(tmp_path):
    path = write_long_rows(tmp_path / "c.csv", BASIC)
    cohort = load(path, make_schema())
    assert cohort.patient_ids == ["a", "b"]
    a, b = cohort.statics.loc["a"], cohort.statics.loc["b"]
    assert (a.Age, a.Sex, a.Unit, a.Weight, a.Death) == (70, 1, UNITS.index("CCU"), 80.5, 0)
    assert b.Unit == UNITS.index("MICU") and np.isnan(b.Sex) and np.isnan(b.Weight)
    # Weight: the hour-0 row is the static, the later row is an observation
    assert obs_of(cohort, "a", "Weight") == [(2.0, 81.25)]
    assert obs_of(cohort, "a", "Vent") == [(3.0, 1.0)]
    assert len(cohort.observations) == 6
    keys = cohort.observations[["patient_id", "hours", "variable"]]
    assert keys.equals(keys.sort_values(["patient_id", "hours", "variable"]))
    assert sum(cohort.report.counts.values()) == 0


def test_sentinels_and_hard_limits_become_missing_and_are_counted(tmp_path):
    rows = [
        *BASIC,
        ("a", "4", "SBP", "0"),  # a BP zero: outside hard limits
        ("a", "5", "SBP", "0"),
        ("a", "6", "SBP", "120"),
        ("a", "4", "HR", "-1"),  # sentinel
        ("b", "0", "Weight", "-1"),  # sentinel in a static
        ("b", "1", "Temp", "60"),
    ]
    cohort = load(write_long_rows(tmp_path / "c.csv", rows), make_schema())
    counts = cohort.report.counts
    assert counts[("outside_hard_limits", "SBP")] == 2
    assert counts[("outside_hard_limits", "Temp")] == 1
    assert counts[("missing_sentinel", "HR")] == 1
    assert counts[("missing_sentinel", "Weight")] == 1
    assert obs_of(cohort, "a", "SBP") == [(6.0, 120.0)]
    assert obs_of(cohort, "a", "HR") == [(1.5, 88.0)]


def test_values_inside_limits_are_kept_as_given(tmp_path):
    rows = [("a", "0", "Age", "70.4"), ("a", "1", "HR", "88.123456")]
    cohort = load(write_long_rows(tmp_path / "c.csv", rows), make_schema())
    assert cohort.statics.loc["a", "Age"] == 70.4
    assert obs_of(cohort, "a", "HR") == [(1.0, 88.123456)]


def test_binary_and_categorical_values_outside_the_allowed_set(tmp_path):
    rows = [
        ("a", "0", "Sex", "2"),
        ("a", "0", "Unit", "ICU-X"),
        ("a", "1", "Vent", "yes please"),
        ("a", "2", "Vent", "true"),
        ("a", "3", "HR", "80"),
    ]
    cohort = load(write_long_rows(tmp_path / "c.csv", rows), make_schema())
    counts = cohort.report.counts
    assert counts[("not_allowed_value", "Sex")] == 1
    assert counts[("not_allowed_value", "Unit")] == 1
    assert counts[("not_allowed_value", "Vent")] == 1
    assert np.isnan(cohort.statics.loc["a", "Sex"]) and np.isnan(cohort.statics.loc["a", "Unit"])
    assert obs_of(cohort, "a", "Vent") == [(2.0, 1.0)]


def test_numeric_categories_match_numbers_written_differently(tmp_path):
    data = make_schema().model_dump(mode="json")
    data["statics"][2]["categories"] = [1, 2, 3, 4]
    schema = parse_schema(data)
    rows = [("a", "0", "Unit", "4.0"), ("a", "1", "HR", "80"), ("b", "0", "Unit", "1")]
    rows.append(("b", "1", "HR", "70"))
    cohort = load(write_long_rows(tmp_path / "c.csv", rows), schema)
    assert list(cohort.statics["Unit"]) == [3, 0]


def test_some_non_numeric_values_are_dropped_and_located(tmp_path):
    rows = [("a", "1", "HR", "80"), ("a", "2", "HR", "eighty"), ("a", "3", "HR", "85")]
    cohort = load(write_long_rows(tmp_path / "c.csv", rows), make_schema())
    assert cohort.report.counts[("non_numeric", "HR")] == 1
    note = " ".join(cohort.report.notes)
    assert "HR" in note and "line 3" in note  # header is line 1
    assert "eighty" not in note  # raw values are never echoed


def test_a_wholly_non_numeric_variable_is_refused(tmp_path):
    rows = [("a", "1", "HR", "high"), ("a", "2", "HR", "low"), ("a", "3", "SBP", "120")]
    with pytest.raises(ClinsynthError, match=r"no value of HR .* is a number"):
        load(write_long_rows(tmp_path / "c.csv", rows), make_schema())


def test_duplicates_mean_for_continuous_last_for_codes(tmp_path):
    rows = [
        ("a", "1", "HR", "80"),
        ("a", "1", "HR", "90"),
        ("a", "1", "HR", "100"),
        ("a", "1", "GCS", "14"),
        ("a", "1", "GCS", "9"),
        ("a", "1", "Vent", "0"),
        ("a", "1", "Vent", "1"),
        ("a", "2", "HR", "70"),
    ]
    cohort = load(write_long_rows(tmp_path / "c.csv", rows), make_schema())
    assert obs_of(cohort, "a", "HR") == [(1.0, 90.0), (2.0, 70.0)]
    assert obs_of(cohort, "a", "GCS") == [(1.0, 9.0)]
    assert obs_of(cohort, "a", "Vent") == [(1.0, 1.0)]
    counts = cohort.report.counts
    assert (counts[("duplicate_collapsed", "HR")], counts[("duplicate_collapsed", "GCS")]) == (2, 1)
    assert any("mean for continuous" in n for n in cohort.report.notes)


def test_unknown_variables_are_dropped_counted_and_listed_ignored_ones_silently(tmp_path):
    rows = [
        ("a", "1", "HR", "80"),
        ("a", "1", "HeartRate", "81"),
        ("a", "2", "HeartRate", "82"),
        ("a", "2", "Admin", "ward 7"),
        ("a", "2", "SBPP", "120"),
    ]
    cohort = load(write_long_rows(tmp_path / "c.csv", rows), make_schema())
    counts = cohort.report.counts
    assert counts[("unknown_variable", "HeartRate")] == 2
    assert counts[("unknown_variable", "SBPP")] == 1
    assert not any(v == "Admin" for _, v in counts)
    note = " ".join(cohort.report.notes)
    assert "HeartRate" in note and "SBPP (did you mean SBP?)" in note
    assert set(cohort.observations.variable) == {"HR"}


def test_few_bad_times_are_dropped_many_refuse_the_file(tmp_path):
    good = [("p", str(h), "HR", "80") for h in range(1, 40)]
    rows = [*good, ("p", "soon", "HR", "81"), ("p", "-2", "HR", "82")]
    cohort = load(write_long_rows(tmp_path / "few.csv", rows), make_schema())
    assert cohort.report.counts[("bad_time", "*")] == 2
    assert len(cohort.observations) == 39
    rows = [*good[:10], *[("p", "n/a yet", "HR", "80")] * 3]
    with pytest.raises(ClinsynthError, match=r"3 of 13 rows .* time in column 't'"):
        load(write_long_rows(tmp_path / "many.csv", rows), make_schema())


def test_patients_without_observations_are_dropped_and_counted(tmp_path):
    rows = [*BASIC, ("c", "0", "Age", "50"), ("d", "1", "HR", "500")]
    cohort = load(write_long_rows(tmp_path / "c.csv", rows), make_schema())
    assert cohort.patient_ids == ["a", "b"]
    assert cohort.report.counts[("no_observations", "*")] == 2


def test_observations_beyond_the_horizon_are_kept_and_noted(tmp_path):
    rows = [("a", "1", "HR", "80"), ("a", "50", "HR", "81"), ("a", "72", "HR", "82")]
    cohort = load(write_long_rows(tmp_path / "c.csv", rows), make_schema())
    assert len(cohort.observations) == 3
    assert any(n.startswith("2 observations after the 48 h") for n in cohort.report.notes)


def test_static_conflicts_keep_the_first_value_and_are_counted(tmp_path):
    rows = [("a", "0", "Age", "70"), ("a", "5", "Age", "71"), ("a", "1", "HR", "80")]
    rows += [("b", "0", "Age", "-1"), ("b", "3", "Age", "44"), ("b", "1", "HR", "80")]
    cohort = load(write_long_rows(tmp_path / "c.csv", rows), make_schema())
    assert list(cohort.statics["Age"]) == [70, 44]
    assert cohort.report.counts[("static_conflict", "Age")] == 1


@pytest.mark.parametrize(
    ("time_format", "times", "hours"),
    [
        ("hours", ["0", "1.5", "30"], [0.0, 1.5, 30.0]),
        ("minutes", ["0", "90", "1800"], [0.0, 1.5, 30.0]),
        ("hhmm", ["00:00", "01:30", "30:00"], [0.0, 1.5, 30.0]),
        (
            "timestamp",
            ["2101-03-04 22:00", "2101-03-04T23:30:00", "2101-03-06 04:00"],
            [0, 1.5, 30],
        ),
    ],
)
def test_time_formats_become_hours_since_the_stay_start(tmp_path, time_format, times, hours):
    rows = [("a", t, "HR", str(80 + i)) for i, t in enumerate(times)]
    rows.append(("a", times[0], "Age", "60"))
    cohort = load(write_long_rows(tmp_path / "c.csv", rows), make_schema(time_format=time_format))
    assert obs_of(cohort, "a", "HR") == [(h, 80.0 + i) for i, h in enumerate(hours)]
    assert cohort.observations["hours"].dtype == float


def test_timestamps_leave_no_date_anywhere(tmp_path):
    rows = [
        ("a", "2101-03-04 22:00:00", "Age", "60"),
        ("a", "2101-03-04 22:07:00", "HR", "80"),
        ("a", "2101-03-05 01:00:00", "HR", "81"),
        ("b", "2133-11-30 08:00:00", "HR", "70"),
        ("b", "garbage", "HR", "71"),
    ]
    rows += [("b", f"2133-11-30 {h:02d}:00:00", "SBP", "120") for h in range(9, 24)]
    cohort = load(write_long_rows(tmp_path / "c.csv", rows), make_schema(time_format="timestamp"))
    assert obs_of(cohort, "a", "HR") == [(7 / 60, 80.0), (3.0, 81.0)]
    assert cohort.observations.groupby("patient_id").hours.min().tolist() == [7 / 60, 0.0]
    dumped = (
        json.dumps({"report": cohort.report.to_dict(), "prov": cohort.provenance}, default=str)
        + cohort.observations.to_csv()
        + cohort.statics.to_csv()
    )
    assert not re.search(r"21(01|33)|\d\d:\d\d:\d\d", dumped)
    assert all(
        not pd.api.types.is_datetime64_any_dtype(t)
        for t in [*cohort.observations.dtypes, *cohort.statics.dtypes]
    )


def test_wide_file_loads_like_its_long_twin(tmp_path):
    columns = [
        *["pid", "t", "Age", "Sex", "Unit", "Weight", "Death"],
        *["HR", "SBP", "Temp", "GCS", "Vent", "Extra"],
    ]
    rows = [
        ["a", "0", "70", "1", "CCU", "80.5", "0", "", "", "", "", "", "x"],
        ["a", "1.5", "70", "", "CCU", "", "0", "88", "", "", "15", "", ""],
        ["a", "2", "", "", "CCU", "81.25", "0", "", "", "", "", "", ""],
        ["a", "3", "", "", "CCU", "", "0", "", "", "", "", "1", ""],
        ["b", "0", "45", "", "MICU", "", "1", "", "", "", "", "", ""],
        ["b", "0.5", "46", "", "MICU", "", "1", "101", "", "38.4", "", "", ""],
    ]
    wide = pd.DataFrame(rows, columns=columns)
    wide.to_csv(tmp_path / "w.csv", index=False)
    cohort_w = load(tmp_path / "w.csv", make_schema(fmt="wide"))
    cohort_l = load(write_long_rows(tmp_path / "l.csv", BASIC), make_schema())
    pd.testing.assert_frame_equal(cohort_w.statics, cohort_l.statics)
    pd.testing.assert_frame_equal(cohort_w.observations, cohort_l.observations)
    assert cohort_w.report.counts[("static_conflict", "Age")] == 1  # b: 45 then 46
    assert cohort_w.report.counts[("unknown_variable", "Extra")] == 1


def test_outcomes_from_a_separate_file(tmp_path):
    schema = make_schema(outcomes_file=True)
    rows = [r for r in BASIC if r[2] != "Death"]
    data = write_long_rows(tmp_path / "c.csv", rows)
    pd.DataFrame({"pid": ["a", "b", "z"], "SAPS": [3, 4, 5], "Death": [1, -1, 0]}).to_csv(
        tmp_path / "out.csv", index=False
    )
    cohort = load(data, schema, outcomes_path=tmp_path / "out.csv")
    assert cohort.statics.loc["a", "Death"] == 1 and np.isnan(cohort.statics.loc["b", "Death"])
    assert cohort.report.counts[("missing_outcome", "Death")] == 1
    notes = " ".join(cohort.report.notes)
    assert "ignored columns not in the schema: SAPS" in notes
    assert "1 ids have no usable rows" in notes
    assert cohort.provenance["outcomes"]["path"].endswith("out.csv")


def test_outcomes_file_found_beside_the_data_or_asked_for(tmp_path):
    schema = make_schema(outcomes_file=True)
    data = write_long_rows(tmp_path / "c.csv", [r for r in BASIC if r[2] != "Death"])
    with pytest.raises(ClinsynthError, match="--outcomes FILE"):
        load(data, schema)
    pd.DataFrame({"pid": ["a", "b"], "Death": [1, 0]}).to_csv(tmp_path / "outcomes.csv")
    assert list(load(data, schema).statics["Death"]) == [1, 0]


def test_outcomes_file_for_a_schema_without_one_is_refused(tmp_path):
    data = write_long_rows(tmp_path / "c.csv", BASIC)
    with pytest.raises(ClinsynthError, match="Drop --outcomes"):
        load(data, make_schema(), outcomes_path=data)


def test_schema_without_statics_or_outcomes(tmp_path):
    data = make_schema().model_dump(mode="json")
    data["statics"], data["outcomes"] = [], []
    rows = [("a", "1", "HR", "80"), ("a", "0", "Age", "50")]
    cohort = load(write_long_rows(tmp_path / "c.csv", rows), parse_schema(data))
    assert list(cohort.statics.columns) == [] and cohort.patient_ids == ["a"]
    assert cohort.report.counts[("unknown_variable", "Age")] == 1


def test_provenance_names_file_hash_and_schema(tmp_path):
    schema = make_schema()
    data = write_long_rows(tmp_path / "c.csv", BASIC)
    prov = load(data, schema).provenance
    assert prov["data"]["path"] == str(data.resolve()) and len(prov["data"]["sha256"]) == 64
    assert prov["schema_name"] == "tiny" and prov["schema_fingerprint"] == schema.fingerprint()
    assert prov["n_patients"] == {"in_file": 2, "after_cleaning": 2, "loaded": 2}
    assert prov["subsample"] is None and prov["outcomes"] is None


def test_schema_by_path(tmp_path):
    from factories import write_schema

    path = write_schema(tmp_path / "tiny.yaml")
    cohort = load(write_long_rows(tmp_path / "c.csv", BASIC), path)
    assert cohort.schema.name == "tiny"
