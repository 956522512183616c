"""Shipped schemas load and are clinically coherent; invalid schemas fail with readable messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from clinsynth.errors import ClinsynthError
from clinsynth.schema import SCHEMA_DIR, VariableType, load_schema

REPO = Path(__file__).resolve().parent.parent
PHYSIONET = REPO.parent / "shared/data/physionet2012"
SHIPPED = sorted(p.stem for p in SCHEMA_DIR.glob("*.yaml"))

PHYSIONET_VARIABLES = [
    "HR",
    "SysABP",
    "DiasABP",
    "MAP",
    "NISysABP",
    "NIDiasABP",
    "NIMAP",
    "Temp",
    "RespRate",
    "GCS",
    "Urine",
    "MechVent",
    "FiO2",
    "SaO2",
    "pH",
    "PaCO2",
    "PaO2",
    "HCT",
    "K",
    "Platelets",
    "Creatinine",
    "BUN",
    "Mg",
    "HCO3",
    "Na",
    "Glucose",
    "WBC",
    "Lactate",
    "Bilirubin",
    "AST",
    "ALT",
    "ALP",
    "Albumin",
    "TroponinT",
    "TroponinI",
    "Cholesterol",
    "Weight",
]
# Charted zeros of these are artefacts in real exports: zero must fall outside their hard limits.
ZERO_IMPOSSIBLE = [
    "HR",
    "SysABP",
    "DiasABP",
    "MAP",
    "NISysABP",
    "NIDiasABP",
    "NIMAP",
    "Temp",
    "RespRate",
    "Weight",
]


def test_shipped_schemas_are_the_expected_ones():
    assert {"physionet2012", "icu_sim"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_schema_loads(name):
    schema = load_schema(name)
    assert schema.name == name
    assert schema.variables
    assert schema.grid.n_steps == 48


@pytest.mark.parametrize("name", SHIPPED)
def test_every_field_is_documented(name):
    schema = load_schema(name)
    for f in [*schema.statics, *schema.outcomes, *schema.variables]:
        assert f.description, f"{f.name} has no description"
        if not f.is_numeric_code:
            assert f.precision is not None, f"{f.name} has no precision"
            if f.name != "pH":
                assert f.unit, f"{f.name} has no unit"
    for v in schema.variables:
        assert v.group in ("vital", "lab", "intervention"), v.name


def test_physionet2012_describes_the_challenge_layout_and_variables():
    s = load_schema("physionet2012")
    lay = s.layout
    assert (lay.format, lay.id_column, lay.time_column, lay.time_format) == (
        "long",
        "RecordID",
        "Time",
        "hhmm",
    )
    assert (lay.variable_column, lay.value_column) == ("Parameter", "Value")
    assert lay.missing_sentinels == [-1] and lay.ignore_variables == ["RecordID"]
    assert lay.outcomes_file
    assert sorted(s.variable_names) == sorted(PHYSIONET_VARIABLES)
    assert s.static_names == ["Age", "Gender", "Height", "ICUType", "Weight"]
    assert s.outcome_names == ["In-hospital_death"]
    assert s.field("In-hospital_death").type is VariableType.binary
    assert s.field("Gender").type is VariableType.binary
    assert s.field("ICUType").categories == [1, 2, 3, 4]
    assert s.variable("MechVent").type is VariableType.binary
    assert s.variable("GCS").type is VariableType.integer
    assert s.variable("FiO2").hard_limits == (0.21, 1.0)


def test_physionet2012_limits_are_clinically_coherent():
    s = load_schema("physionet2012")
    for name in ZERO_IMPOSSIBLE:
        assert s.variable(name).hard_limits[0] > 0, f"{name}: a charted 0 would pass"
    assert s.variable("Urine").hard_limits[0] == 0, "anuria (0 mL) is real"
    for v in s.variables:
        if v.transform == "log":
            assert v.hard_limits[0] > 0, f"{v.name}: log of the lower limit is -inf"
        if v.group == "vital" and v.type is VariableType.continuous and v.name != "Urine":
            assert v.max_rate_per_hour, f"{v.name}: vitals need a max rate"
    # invasive and cuff pressures share one physiology
    for inv, cuff in [("SysABP", "NISysABP"), ("DiasABP", "NIDiasABP"), ("MAP", "NIMAP")]:
        assert s.variable(inv).hard_limits == s.variable(cuff).hard_limits
    kinds = {(r.kind, r.left or r.target or r.when) for r in s.rules}
    assert {("less_than", "DiasABP"), ("less_than", "NIDiasABP")} <= kinds
    assert {("between", "MAP"), ("between", "NIMAP"), ("implies", "MechVent")} <= kinds


def test_icu_sim_extends_physionet2012_with_its_own_layout():
    base, sim = load_schema("physionet2012"), load_schema("icu_sim")
    assert sim.variables == base.variables
    assert sim.statics == base.statics and sim.outcomes == base.outcomes
    assert sim.rules == base.rules and sim.grid == base.grid
    assert sim.layout != base.layout
    assert (sim.layout.id_column, sim.layout.time_column, sim.layout.time_format) == (
        "patient_id",
        "hours",
        "hours",
    )
    assert (sim.layout.variable_column, sim.layout.value_column) == ("variable", "value")
    assert not sim.layout.outcomes_file
    assert sim.fingerprint() != base.fingerprint()


@pytest.mark.slow
@pytest.mark.skipif(not PHYSIONET.exists(), reason="real PhysioNet 2012 data not available")
def test_physionet2012_hard_limits_only_cut_artefacts_of_real_data():
    """Sanity check against set-a: limits remove well under 1% of any variable's values."""
    import pandas as pd

    s = load_schema("physionet2012")
    df = pd.read_csv(PHYSIONET / "set-a.csv.gz", usecols=["Parameter", "Value"])
    df = df[df["Value"] != -1]
    for v in s.variables:
        if v.hard_limits is None:
            continue
        values = df.loc[df["Parameter"] == v.name, "Value"]
        lo, hi = v.hard_limits
        outside = (values < lo) | (values > hi)
        assert len(values) > 0, v.name
        assert outside.mean() < 0.01, f"{v.name}: {outside.mean():.2%} outside {v.hard_limits}"


# ----------------------------------------------------------------------------- invalid schemas


def _minimal() -> dict:
    return {
        "name": "mini",
        "layout": {
            "id_column": "id",
            "time_column": "t",
            "variable_column": "var",
            "value_column": "val",
        },
        "statics": [{"name": "Unit", "type": "categorical", "categories": ["A", "B"]}],
        "variables": [
            {"name": "HR", "hard_limits": [20, 300]},
            {"name": "SBP", "hard_limits": [25, 300]},
            {"name": "DBP", "hard_limits": [10, 200]},
        ],
        "rules": [{"kind": "less_than", "left": "DBP", "right": "SBP"}],
    }


def _write(tmp_path: Path, data: dict, name: str = "mini.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _error(tmp_path: Path, data: dict) -> str:
    with pytest.raises(ClinsynthError) as exc:
        load_schema(_write(tmp_path, data))
    message = str(exc.value)
    assert "Traceback" not in message and "\n" not in message.strip()
    return message


def test_minimal_schema_is_valid(tmp_path):
    assert load_schema(_write(tmp_path, _minimal())).variable_names == ["HR", "SBP", "DBP"]


def test_reversed_range_is_refused(tmp_path):
    data = _minimal()
    data["variables"][0]["hard_limits"] = [300, 20]
    msg = _error(tmp_path, data)
    assert "variables.0.hard_limits" in msg and "low <= high" in msg and "[300.0, 20.0]" in msg


def test_normal_range_outside_hard_limits_is_refused(tmp_path):
    data = _minimal()
    data["variables"][0]["normal_range"] = [10, 90]
    assert "HR: normal_range must lie inside hard_limits" in _error(tmp_path, data)


def test_rule_naming_an_unknown_variable_is_refused(tmp_path):
    data = _minimal()
    data["rules"].append({"kind": "between", "target": "MAP", "low": "DBP", "high": "SBP"})
    assert re.search(r"rule names unknown variables: \['MAP'\]", _error(tmp_path, data))


def _panel(*names: str) -> dict:
    return {"name": "p", "variables": list(names)}


@pytest.mark.parametrize(
    "panels, message",
    [
        ([_panel("SBP", "MAP")], r"panel names unknown variables: \['MAP'\]"),
        ([_panel("SBP", "DBP"), _panel("DBP", "HR")], r"in more than one panel: \[.DBP.\]"),
        ([_panel("SBP")], r"panels.0.variables"),
    ],
)
def test_a_panel_must_name_two_or_more_known_variables_once(tmp_path, panels, message):
    data = _minimal()
    data["panels"] = panels
    assert re.search(message, _error(tmp_path, data))


def test_rule_missing_its_fields_is_refused(tmp_path):
    data = _minimal()
    data["rules"] = [{"kind": "implies", "when": "HR", "then": "SBP"}]
    assert "rule of kind implies needs equals, range" in _error(tmp_path, data)


def test_categorical_without_categories_is_refused(tmp_path):
    data = _minimal()
    del data["statics"][0]["categories"]
    assert "Unit: a categorical field needs a list of categories" in _error(tmp_path, data)


def test_continuous_without_hard_limits_is_refused(tmp_path):
    data = _minimal()
    del data["variables"][1]["hard_limits"]
    assert "SBP: a continuous field needs hard_limits" in _error(tmp_path, data)


def test_within_stay_sd_needs_a_positive_value_on_an_untransformed_measured_variable(tmp_path):
    data = _minimal()
    data["variables"][0]["within_stay_sd"] = 5
    assert load_schema(_write(tmp_path, data)).variables[0].within_stay_sd == 5
    data["variables"][0]["transform"] = "log1p"
    assert "HR: within_stay_sd is in the variable's unit" in _error(tmp_path, data)
    data["variables"][0]["transform"] = "none"
    data["variables"][0]["within_stay_sd"] = 0
    error = _error(tmp_path, data)
    assert "within_stay_sd" in error and "greater than 0" in error
    data["variables"].append({"name": "Vent", "type": "binary", "within_stay_sd": 1})
    data["variables"][0]["within_stay_sd"] = 5
    assert "Vent: within_stay_sd needs a measured quantity" in _error(tmp_path, data)


def test_duplicate_variable_names_are_refused(tmp_path):
    data = _minimal()
    data["variables"].append({"name": "HR", "hard_limits": [20, 300]})
    assert "duplicate names: ['HR']" in _error(tmp_path, data)


def test_unknown_key_is_refused(tmp_path):
    data = _minimal()
    data["variables"][0]["hard_limit"] = [20, 300]  # typo
    assert "hard_limit" in _error(tmp_path, data)


def test_extends_overrides_top_level_keys(tmp_path):
    data = {"extends": str(_write(tmp_path, _minimal(), "base.yaml")), "name": "child"}
    data["layout"] = {**_minimal()["layout"], "time_format": "minutes"}
    child = load_schema(_write(tmp_path, data, "child.yaml"))
    assert child.name == "child" and child.layout.time_format == "minutes"
    assert child.variable_names == ["HR", "SBP", "DBP"]


def test_extends_an_unknown_schema_is_refused(tmp_path):
    data = {"extends": "no_such_schema", "name": "child"}
    msg = _error(tmp_path, data)
    assert "Unknown schema 'no_such_schema'" in msg and "physionet2012" in msg


def test_extends_that_breaks_the_base_is_refused(tmp_path):
    base = _write(tmp_path, _minimal(), "base.yaml")
    data = {"extends": str(base), "variables": [{"name": "HR", "hard_limits": [20, 300]}]}
    # the inherited rule now names variables the child removed
    assert "rule names unknown variables" in _error(tmp_path, data)


def test_not_yaml_and_unknown_names_are_readable(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ClinsynthError, match="not valid YAML"):
        load_schema(bad)
    with pytest.raises(ClinsynthError, match=r"Known schemas: .*icu_sim"):
        load_schema("definitely_not_a_schema")
