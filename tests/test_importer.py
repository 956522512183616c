"""PhysioNet 2012 importer: challenge folder or packed CSV → the physionet2012 packed layout."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest
from factories import PHYSIONET, PHYSIONET_SET_A
from typer.testing import CliRunner

from clinsynth.cli import app
from clinsynth.errors import ClinsynthError
from clinsynth.importers.physionet2012 import import_physionet2012
from clinsynth.loader import load_cohort


def record(rid: int, rows: list[str], weight: str = "-1") -> str:
    head = [
        "Time,Parameter,Value",
        f"00:00,RecordID,{rid}",
        "00:00,Age,54",
        "00:00,Gender,0",
        "00:00,Height,-1",
        "00:00,ICUType,4",
        f"00:00,Weight,{weight}",
    ]
    return "\n".join(head + rows) + "\n"


@pytest.fixture
def challenge(tmp_path):
    folder = tmp_path / "set-a"
    folder.mkdir()
    (folder / "132539.txt").write_text(record(132539, ["00:07,HR,73", "00:07,SysABP,0"]))
    (folder / "132540.txt").write_text(record(132540, ["01:37,HR,60", "49:10,Weight,80.1"], "81"))
    (folder / "900.txt").write_text(record(900, ["00:30,Temp,36.6"]))
    (folder / "README.txt").write_text("not a record")
    pd.DataFrame(
        {
            "RecordID": [132539, 132540, 900, 555],
            "SAPS-I": [6, 16, 3, 9],
            "In-hospital_death": [0, 1, 0, 1],
        }
    ).to_csv(tmp_path / "Outcomes-a.txt", index=False)
    return folder


def test_challenge_folder_becomes_the_packed_layout(challenge, tmp_path):
    out = tmp_path / "imported"
    summary = import_physionet2012(challenge, out, progress=False)
    assert (summary.n_records, summary.n_rows, summary.n_outcomes) == (3, 23, 3)
    assert [f.name for f in summary.files] == ["cohort.csv.gz", "outcomes.csv"]
    with gzip.open(out / "cohort.csv.gz", "rt") as fh:
        lines = fh.read().splitlines()
    assert lines[0] == "RecordID,Time,Parameter,Value"
    assert lines[1] == "900,00:00,RecordID,900"  # records in numeric order
    assert "132540,49:10,Weight,80.1" in lines and len(lines) == 24
    outcomes = pd.read_csv(out / "outcomes.csv")
    assert sorted(outcomes.RecordID) == [900, 132539, 132540]  # 555 has no record: left out

    cohort = load_cohort(
        out / "cohort.csv.gz", "physionet2012", enforce_window=False, progress=False
    )
    assert cohort.patient_ids == ["132539", "132540", "900"]
    assert cohort.statics.loc["132540", ["Weight", "In-hospital_death"]].tolist() == [81, 1]
    assert cohort.report.counts[("outside_hard_limits", "SysABP")] == 1


def test_import_is_reproducible_and_never_overwrites(challenge, tmp_path):
    import_physionet2012(challenge, tmp_path / "a", progress=False)
    import_physionet2012(challenge, tmp_path / "b", progress=False)
    assert (tmp_path / "a/cohort.csv.gz").read_bytes() == (
        tmp_path / "b/cohort.csv.gz"
    ).read_bytes()
    with pytest.raises(ClinsynthError, match="already exists and is not empty"):
        import_physionet2012(challenge, tmp_path / "a", progress=False)
    import_physionet2012(challenge, tmp_path / "a", force=True, progress=False)


def test_bad_record_file_is_named(challenge, tmp_path):
    (challenge / "1.txt").write_text("Time;Parameter;Value\n00:00;HR;80\n")
    with pytest.raises(ClinsynthError, match=r"1\.txt should start with the header"):
        import_physionet2012(challenge, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_folder_without_records(tmp_path):
    with pytest.raises(ClinsynthError, match="holds no challenge record files"):
        import_physionet2012(tmp_path, tmp_path / "out", progress=False)


def test_cli_import(challenge, tmp_path):
    result = CliRunner().invoke(
        app, ["import", "physionet2012", str(challenge), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "3 records" in result.output and "clinsynth validate" in result.output
    result = CliRunner().invoke(
        app, ["import", "physionet2012", str(tmp_path / "missing"), "--out", str(tmp_path / "p")]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "does not exist" in result.output and not (tmp_path / "p").exists()


@pytest.mark.slow
@pytest.mark.skipif(not PHYSIONET_SET_A.exists(), reason=f"PhysioNet 2012 not found at {PHYSIONET}")
def test_real_packed_file(tmp_path):
    summary = import_physionet2012(PHYSIONET_SET_A, tmp_path / "pn", progress=False)
    assert (summary.n_records, summary.n_outcomes, summary.records_without_outcome) == (
        4000,
        4000,
        0,
    )
    original = pd.read_csv(PHYSIONET_SET_A, dtype=str)
    converted = pd.read_csv(tmp_path / "pn/cohort.csv.gz", dtype=str)
    pd.testing.assert_frame_equal(original, converted)
