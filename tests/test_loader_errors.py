"""Loader hard errors: each names the file, the column and what to do."""

from __future__ import annotations

import gzip
import zipfile

import pandas as pd
import pytest
from factories import make_schema, write_long_rows

from clinsynth.errors import ClinsynthError
from clinsynth.loader import load_cohort


def load(path, schema=None, **kw):
    return load_cohort(path, schema or make_schema(), enforce_window=False, progress=False, **kw)


def test_missing_file(tmp_path):
    with pytest.raises(ClinsynthError, match=r"nope\.csv does not exist"):
        load(tmp_path / "nope.csv")


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(ClinsynthError, match="is a folder"):
        load(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ClinsynthError, match=r"e\.csv is empty"):
        load(tmp_path / "e.csv")


def test_header_only(tmp_path):
    (tmp_path / "h.csv").write_text("pid,t,var,val\n")
    with pytest.raises(ClinsynthError, match=r"has a header .* but no data rows"):
        load(tmp_path / "h.csv")


def test_binary_file_is_not_csv(tmp_path):
    (tmp_path / "b.csv").write_bytes(bytes(range(256)) * 20)
    with pytest.raises(ClinsynthError, match="could not be read as CSV text"):
        load(tmp_path / "b.csv")


def test_spreadsheet_is_not_csv(tmp_path):
    with zipfile.ZipFile(tmp_path / "sheet.xlsx", "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(ClinsynthError, match=r"spreadsheet .* save the sheet as CSV"):
        load(tmp_path / "sheet.xlsx")


def test_fake_gzip_is_refused(tmp_path):
    (tmp_path / "c.csv.gz").write_text("pid,t,var,val\na,1,HR,80\n")
    with pytest.raises(ClinsynthError, match="could not be read as CSV text"):
        load(tmp_path / "c.csv.gz")


def test_gzip_csv_reads(tmp_path):
    with gzip.open(tmp_path / "c.csv.gz", "wt") as fh:
        fh.write("pid,t,var,val\na,1,HR,80\n")
    assert load(tmp_path / "c.csv.gz").n_patients == 1


def test_ragged_csv(tmp_path):
    (tmp_path / "r.csv").write_text("pid,t,var,val\na,1,HR,80\na,2,HR,80,1,2,3\n")
    with pytest.raises(ClinsynthError, match="not a well-formed CSV"):
        load(tmp_path / "r.csv")


def test_renamed_columns_are_listed_with_close_matches(tmp_path):
    write_long_rows(tmp_path / "c.csv", [("a", "1", "HR", "80")], ("PID", "time", "var", "value"))
    with pytest.raises(ClinsynthError) as info:
        load(tmp_path / "c.csv")
    msg = str(info.value)
    assert "c.csv" in msg and "'pid', 't', 'val'" in msg
    assert "Expected: pid, t, var, val; found: PID, time, var, value" in msg
    assert "'val' → did you mean 'value'?" in msg and "'pid' → did you mean 'PID'?" in msg


def test_semicolon_files_get_a_hint(tmp_path):
    (tmp_path / "s.csv").write_text("pid;t;var;val\na;1;HR;80\n")
    with pytest.raises(ClinsynthError, match="separated by semicolons"):
        load(tmp_path / "s.csv")


def test_wide_file_missing_a_variable_column(tmp_path):
    pd.DataFrame({"pid": ["a"], "t": [0], "Age": [50], "HeartRate": [80]}).to_csv(
        tmp_path / "w.csv", index=False
    )
    with pytest.raises(ClinsynthError, match="lacks the column"):
        load(tmp_path / "w.csv", make_schema(fmt="wide"))


def test_outcomes_file_missing_its_column(tmp_path):
    data = write_long_rows(tmp_path / "c.csv", [("a", "1", "HR", "80")])
    pd.DataFrame({"pid": ["a"], "death": [1]}).to_csv(tmp_path / "o.csv", index=False)
    with pytest.raises(
        ClinsynthError, match=r"Outcomes file .*o\.csv lacks the column\(s\) 'Death'"
    ):
        load(data, make_schema(outcomes_file=True), outcomes_path=tmp_path / "o.csv")


def test_nothing_left_after_cleaning(tmp_path):
    rows = [("a", "1", "HR", "0"), ("a", "1", "Pulse", "80"), ("b", "2", "SBP", "-1")]
    with pytest.raises(ClinsynthError, match="no observations are left after cleaning"):
        load(write_long_rows(tmp_path / "c.csv", rows))


def test_unknown_schema_name(tmp_path):
    data = write_long_rows(tmp_path / "c.csv", [("a", "1", "HR", "80")])
    with pytest.raises(ClinsynthError, match="Unknown schema 'no_such_schema'"):
        load(data, "no_such_schema")
