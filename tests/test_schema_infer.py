"""`schema infer` drafts (layout, roles, types; ranges never copied) and `schema list/show`."""

from __future__ import annotations

import re

import pytest
import yaml
from factories import flat, make_cohort, make_schema
from typer.testing import CliRunner

from clinsynth.cli import app
from clinsynth.errors import ClinsynthError
from clinsynth.loader import load_cohort
from clinsynth.schema import load_schema
from clinsynth.schema_infer import draft_yaml, infer_schema
from clinsynth.writer import write_cohort


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("infer")
    cohort = make_cohort(60, make_schema(), seed=11)
    obs = cohort.observations
    obs.loc[obs.index[:3], "value"] = -1.0  # a sentinel code in two variables
    obs.loc[obs[obs.variable == "Temp"].index[:2], "value"] = -1.0
    return write_cohort(cohort, folder)[0]


def by_name(draft):
    return {f.name: f for f in draft.fields}


def test_long_layout_roles_and_types(long_file):
    draft = infer_schema(long_file)
    assert draft.layout == {
        "format": "long",
        "id_column": "pid",
        "time_column": "t",
        "time_format": "hours",
        "variable_column": "var",
        "value_column": "val",
    }
    assert draft.sentinels == [-1.0] and draft.n_patients == 60
    fields = by_name(draft)
    kinds = {n: (f.kind, f.type) for n, f in fields.items()}
    assert kinds["Age"] == ("static", "continuous")
    assert kinds["Sex"] == ("static", "binary")
    assert kinds["Unit"] == ("static", "categorical")
    assert kinds["Weight"] == ("both", "continuous")
    assert kinds["Death"] == ("outcome", "binary")
    assert kinds["HR"] == ("variable", "continuous") and kinds["GCS"] == ("variable", "integer")
    assert kinds["Vent"] == ("variable", "binary")
    assert fields["Unit"].categories == ["CCU", "MICU", "SICU"]
    assert fields["SBP"].precision == 2 and fields["Temp"].precision == 1


def test_draft_never_contains_observed_values(long_file):
    draft = infer_schema(long_file)
    text = draft_yaml(draft, "tiny_draft", long_file.name)
    assert all(f.observed for f in draft.fields if f.type in ("continuous", "integer"))
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    numbers = {float(x) for x in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])", body)}
    # only layout/grid constants, the sentinel code and precisions: no data values
    assert numbers <= {-1.0, 0.0, 1.0, 2.0, 48.0}
    # Age, Weight (static and variable), HR, SBP, Temp, GCS
    assert text.count("hard_limits: [TODO_low, TODO_high]") == 7
    entries = len(draft.fields) + sum(f.kind == "both" for f in draft.fields)
    assert text.count("\n    inferred: true") == entries == 11


def test_draft_is_refused_until_todos_are_filled(long_file, tmp_path):
    text = draft_yaml(infer_schema(long_file), "tiny_draft", long_file.name)
    path = tmp_path / "draft.yaml"
    path.write_text(text)
    with pytest.raises(ClinsynthError, match=r"unfinished draft .* 7 line\(s\) still hold TODO_"):
        load_schema(path)
    filled = tmp_path / "filled.yaml"
    filled.write_text(text.replace("TODO_low", "0").replace("TODO_high", "1000"))
    schema = load_schema(filled)
    assert schema.static_names == ["Age", "Sex", "Unit", "Weight"]
    assert schema.outcome_names == ["Death"]
    cohort = load_cohort(long_file, schema, enforce_window=False, progress=False)
    assert cohort.n_patients == 60
    assert cohort.report.total("missing_sentinel") == 5


def test_wide_layout_and_hhmm_times(tmp_path):
    cohort = make_cohort(30, make_schema(fmt="wide", time_format="hhmm"), seed=2)
    path = write_cohort(cohort, tmp_path)[0]
    draft = infer_schema(path)
    assert draft.layout["format"] == "wide" and draft.layout["time_format"] == "hhmm"
    fields = by_name(draft)
    assert fields["Age"].kind == "static" and fields["HR"].kind == "variable"
    assert "variable_column" not in yaml.safe_load(draft_yaml(draft, "w", "x"))["layout"]


def test_timestamp_times_and_explicit_columns(tmp_path):
    path = tmp_path / "ts.csv"
    path.write_text(
        "stay,charted,item,reading\n"
        "s1,2101-01-01 10:00,HR,80\ns1,2101-01-01 11:00,HR,82\ns2,2101-02-01 08:30,HR,90\n"
    )
    draft = infer_schema(path, id_column="stay", time_column="charted")
    assert draft.layout["time_format"] == "timestamp"
    assert draft.layout["variable_column"] == "item"


def test_forcing_long_on_a_wide_file_is_refused(tmp_path):
    path = write_cohort(make_cohort(5, make_schema(fmt="wide"), seed=1), tmp_path)[0]
    with pytest.raises(ClinsynthError, match="A long file has exactly 4 columns"):
        infer_schema(path, layout="long")


def test_cli_infer_writes_a_draft_and_never_overwrites(long_file, tmp_path):
    out = tmp_path / "draft.yaml"
    result = CliRunner().invoke(app, ["schema", "infer", str(long_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "for your review only" in flat(result.output) and "TODO_low" in out.read_text()
    again = CliRunner().invoke(app, ["schema", "infer", str(long_file), "--out", str(out)])
    assert again.exit_code != 0 and "already exists" in flat(again.output)
    shown = CliRunner().invoke(app, ["schema", "show", str(out)])
    assert shown.exit_code != 0 and "TODO_ placeholders" in flat(shown.output)
    assert "Traceback" not in shown.output


def test_cli_list_and_show():
    listed = CliRunner().invoke(app, ["schema", "list"])
    assert listed.exit_code == 0 and "physionet2012" in listed.output
    shown = CliRunner().invoke(app, ["schema", "show", "physionet2012"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    assert "In-hospital_death" in shown.output and "RecordID" in shown.output
    missing = CliRunner().invoke(app, ["schema", "show", "nope"])
    assert missing.exit_code != 0 and "Unknown schema 'nope'" in flat(missing.output)
