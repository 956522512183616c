"""Writer: load(write(c)) == c in every layout, and the written text follows the schema."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
from factories import UNITS, make_cohort, make_schema

from clinsynth.cohort import Cohort
from clinsynth.loader import load_cohort
from clinsynth.writer import format_numbers, format_times, write_cohort


def round_trip(cohort: Cohort, folder, **kw) -> Cohort:
    files = write_cohort(cohort, folder, **kw)
    outcomes = files[1] if len(files) > 1 else None
    return load_cohort(
        files[0], cohort.schema, outcomes_path=outcomes, enforce_window=False, progress=False
    )


def assert_same(a: Cohort, b: Cohort) -> None:
    pd.testing.assert_frame_equal(a.statics, b.statics, check_dtype=False)
    pd.testing.assert_frame_equal(a.observations, b.observations, check_dtype=False)
    assert sum(b.report.counts.values()) == 0


@pytest.mark.parametrize("fmt", ["long", "wide"])
@pytest.mark.parametrize("time_format", ["hours", "hhmm"])
@pytest.mark.parametrize("outcomes_file", [False, True])
def test_round_trip(tmp_path, fmt, time_format, outcomes_file):
    schema = make_schema(fmt=fmt, time_format=time_format, outcomes_file=outcomes_file)
    cohort = make_cohort(40, schema, seed=3)
    assert_same(cohort, round_trip(cohort, tmp_path))


@pytest.mark.parametrize("time_format", ["minutes", "timestamp"])
def test_round_trip_minutes_and_timestamp_offsets(tmp_path, time_format):
    cohort = make_cohort(20, make_schema(time_format=time_format), seed=4, minute_times=False)
    back = round_trip(cohort, tmp_path)
    pd.testing.assert_frame_equal(cohort.statics, back.statics, check_dtype=False)
    pd.testing.assert_frame_equal(
        cohort.observations, back.observations, check_dtype=False, rtol=0, atol=1e-7
    )


def test_timestamp_layout_never_gets_invented_dates(tmp_path):
    cohort = make_cohort(5, make_schema(time_format="timestamp"), seed=1)
    (main,) = write_cohort(cohort, tmp_path)
    times = pd.read_csv(main)["t"]
    assert pd.api.types.is_float_dtype(times) and times.min() == 0


def test_weight_measured_at_hour_zero_survives(tmp_path):
    for fmt in ("long", "wide"):
        cohort = make_cohort(6, make_schema(fmt=fmt), seed=2)
        extra = pd.DataFrame(
            {"patient_id": ["p0000", "p0001"], "hours": 0.0, "variable": "Weight", "value": 99.5}
        )
        obs = pd.concat([extra, cohort.observations]).sort_values(["patient_id", "hours"])
        cohort = Cohort(cohort.schema, cohort.statics, obs.reset_index(drop=True))
        cohort.statics.loc[["p0000", "p0001"], "Weight"] = [np.nan, 70.0]
        assert_same(cohort, round_trip(cohort, tmp_path / fmt))


def test_long_text_follows_the_schema(tmp_path):
    schema = make_schema(time_format="hhmm", outcomes_file=True)
    statics = pd.DataFrame(
        {"Age": [70.0], "Sex": [1.0], "Unit": [2.0], "Weight": [80.04], "Death": [0.0]},
        index=["x"],
    )
    obs = pd.DataFrame(
        {
            "patient_id": ["x", "x", "x"],
            "hours": [0.5, 25.25, 30.0],
            "variable": ["HR", "Temp", "SBP"],
            "value": [88.4, 37.25, 120.125],
        }
    )
    files = write_cohort(
        Cohort(schema, statics, obs), tmp_path, main_name="c.csv.gz", outcomes_name="o.csv"
    )
    assert [f.name for f in files] == ["c.csv.gz", "o.csv"]
    with gzip.open(files[0], "rt") as fh:
        lines = fh.read().splitlines()
    assert lines == [
        "pid,t,var,val",
        "x,00:00,Age,70",
        "x,00:00,Sex,1",
        f"x,00:00,Unit,{UNITS[2]}",
        "x,00:00,Weight,80",  # precision 1, no trailing .0
        "x,00:30,HR,88",  # precision 0
        "x,25:15,Temp,37.2",  # rounding half to even at precision 1 (37.25 is 37.249999...)
        "x,30:00,SBP,120.125",  # no precision: written exactly
    ]
    assert files[1].read_text().splitlines() == ["pid,Death", "x,0"]


def test_output_is_byte_for_byte_reproducible(tmp_path):
    cohort = make_cohort(10, make_schema(), seed=5)
    a = write_cohort(cohort, tmp_path / "a", main_name="c.csv.gz")[0].read_bytes()
    b = write_cohort(cohort, tmp_path / "b", main_name="c.csv.gz")[0].read_bytes()
    assert a == b


def test_writes_are_atomic_no_partial_files_left(tmp_path):
    write_cohort(make_cohort(3, make_schema(), seed=0), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort.csv"]


def test_number_and_time_formatting():
    assert list(format_numbers(np.array([73.0, 92.33, np.nan, -1.5]))) == [
        "73",
        "92.33",
        "",
        "-1.5",
    ]
    assert list(format_times(np.array([0.0, 67 / 60, 49.5]), "hhmm")) == ["00:00", "01:07", "49:30"]
    assert list(format_times(np.array([1.5]), "minutes")) == ["90"]


def test_invalid_category_codes_are_written_as_missing():
    from clinsynth.writer import format_values

    field = make_schema().field("Unit")
    codes = np.array([0.0, 2.0, 3.0, -1.0, 1.5, np.nan])
    assert list(format_values(codes, field)) == ["MICU", "CCU", "", "", "", ""]
