"""`clinsynth validate`: tables on success; every bad input is a readable, traceback-free refusal
with a non-zero exit code, and nothing is ever written."""

from __future__ import annotations

import re
import zipfile

import pytest
from factories import flat, many_patients_file, write_schema
from typer.testing import CliRunner

from clinsynth.cli import app


def listing(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("validate")
    write_schema(folder / "tiny.yaml")
    many_patients_file(folder / "ok.csv", 500)
    many_patients_file(folder / "small.csv", 499)
    many_patients_file(folder / "big.csv", 2001)
    (folder / "empty.csv").write_text("")
    (folder / "binary.csv").write_bytes(bytes(range(256)) * 8)
    with zipfile.ZipFile(folder / "sheet.xlsx", "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    (folder / "renamed.csv").write_text("patient,t,var,val\na,1,HR,80\n")
    (folder / "impossible.csv").write_text("pid,t,var,val\na,1,HR,0\nb,1,HR,999\n")
    draft = (folder / "tiny.yaml").read_text().replace("- 300\n", "- TODO_high\n", 1)
    assert "TODO_high" in draft
    (folder / "draft.yaml").write_text(draft)
    return folder


def invoke(folder, *args):
    args = [a.format(d=folder) for a in args]
    return CliRunner().invoke(app, ["validate", *args], env={"COLUMNS": "120"})


def test_valid_cohort_prints_the_tables_and_writes_nothing(folder):
    before = listing(folder)
    result = invoke(folder, "{d}/ok.csv", "--schema", "{d}/tiny.yaml")
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert "patients loaded 500" in out and "observations 1,000" in out
    assert re.search(r"HR 1,000 500 \(100%\) 0\.042 95\.8%", out)  # 2 of 48 cells measured
    assert "Death rate" in out and "Cleaning report" in out and "(nothing to clean)" in out
    assert "OK: 500 patients are ready" in out
    assert listing(folder) == before


def test_subsample_option(folder):
    result = invoke(folder, "{d}/big.csv", "--schema", "{d}/tiny.yaml", "--subsample", "600")
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert "patients in file 2,001" in out and "patients loaded 600" in out
    assert "Subsampled 600 of 2,001 patients (seed 0)" in out


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["{d}/nope.csv"], "nope.csv does not exist", 2),
        (["{d}/empty.csv"], "is empty (0 bytes)", 2),
        (["{d}/binary.csv"], "could not be read as CSV text", 2),
        (["{d}/sheet.xlsx"], "is a ZIP archive or a spreadsheet", 2),
        (["{d}/renamed.csv"], "lacks the column(s) 'pid'", 2),
        (["{d}/impossible.csv"], "no observations are left after cleaning", 2),
        (["{d}/small.csv"], "499 patients after cleaning; below 500", 3),
        (["{d}/big.csv"], "Pass --subsample 2000", 3),
        (["{d}/big.csv", "--subsample", "100"], "--subsample 100 is outside", 2),
        (["{d}/ok.csv", "--outcomes", "{d}/ok.csv"], "Drop --outcomes", 2),
    ],
)
def test_bad_inputs_are_refused_readably(folder, args, message, code):
    before = listing(folder)
    result = invoke(folder, *args, "--schema", "{d}/tiny.yaml")
    assert result.exit_code == code, result.output
    assert message in flat(result.output)
    assert "cannot continue" in result.output and "Traceback" not in result.output
    assert listing(folder) == before


@pytest.mark.parametrize(
    ("schema", "message"),
    [("no_such_schema", "Unknown schema 'no_such_schema'"), ("{d}/draft.yaml", "TODO_")],
)
def test_bad_schemas_are_refused_readably(folder, schema, message):
    result = invoke(folder, "{d}/ok.csv", "--schema", schema)
    assert result.exit_code != 0 and message in flat(result.output)
    assert "Traceback" not in result.output


def test_refused_cohort_still_shows_the_cleaning_report(folder):
    result = invoke(folder, "{d}/small.csv", "--schema", "{d}/tiny.yaml")
    assert result.exit_code == 3
    assert "Cleaning report" in flat(result.output)
