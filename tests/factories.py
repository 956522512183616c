"""Tiny schemas, cohorts and files for loader/writer/CLI tests (no real data involved)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from clinsynth.cohort import Cohort
from clinsynth.schema import Schema, parse_schema

REPO = Path(__file__).resolve().parent.parent
PHYSIONET = REPO.parent / "shared/data/physionet2012"
PHYSIONET_SET_A = PHYSIONET / "set-a.csv.gz"


def flat(text: str) -> str:
    """CLI output without rich's line wrapping and box drawing, for phrase matching: where a
    panel wraps depends on the length of the paths in it (pytest's tmp folder numbering)."""
    return " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━]", " ", text).split())


UNITS = ["MICU", "SICU", "CCU"]


def schema_dict(
    fmt: str = "long",
    time_format: str = "hours",
    outcomes_file: bool = False,
    sentinels: tuple[float, ...] = (-1,),
    ignore: tuple[str, ...] = ("Admin",),
    horizon: float = 48.0,
) -> dict:
    """A small ICU-like schema: 4 statics (Weight also a variable), 1 outcome, 6 variables."""
    layout = {
        "format": fmt,
        "id_column": "pid",
        "time_column": "t",
        "time_format": time_format,
        "missing_sentinels": list(sentinels),
        "ignore_variables": list(ignore),
        "outcomes_file": outcomes_file,
    }
    if fmt == "long":
        layout |= {"variable_column": "var", "value_column": "val"}
    return {
        "name": "tiny",
        "layout": layout,
        "grid": {"step_hours": 1.0, "horizon_hours": horizon},
        "statics": [
            {"name": "Age", "hard_limits": [15, 110], "precision": 0},
            {"name": "Sex", "type": "binary"},
            {"name": "Unit", "type": "categorical", "categories": UNITS},
            {"name": "Weight", "hard_limits": [20, 300], "precision": 1},
        ],
        "outcomes": [{"name": "Death", "type": "binary"}],
        "variables": [
            {"name": "HR", "hard_limits": [1, 300], "precision": 0},
            {"name": "SBP", "hard_limits": [1, 300]},
            {"name": "Temp", "hard_limits": [25, 45], "precision": 1},
            {"name": "GCS", "type": "integer", "hard_limits": [3, 15]},
            {"name": "Vent", "type": "binary"},
            {"name": "Weight", "hard_limits": [20, 300], "precision": 1},
        ],
    }


def make_schema(**kwargs) -> Schema:
    return parse_schema(schema_dict(**kwargs), "tests")


def write_schema(path: Path, **kwargs) -> Path:
    path.write_text(yaml.safe_dump(schema_dict(**kwargs), sort_keys=False))
    return path


def make_cohort(n: int, schema: Schema, seed: int = 0, minute_times: bool = True) -> Cohort:
    """A random in-memory cohort with values at each field's precision.

    ``minute_times`` puts observations on whole minutes (what an HH:MM file can represent).
    """
    rng = np.random.default_rng(seed)
    ids = [f"p{i:04d}" for i in range(n)]
    statics = pd.DataFrame(
        {
            "Age": rng.integers(18, 95, n).astype(float),
            "Sex": rng.integers(0, 2, n).astype(float),
            "Unit": rng.integers(0, len(UNITS), n).astype(float),
            "Weight": np.round(rng.uniform(45, 130, n), 1),
            "Death": rng.integers(0, 2, n).astype(float),
        },
        index=pd.Index(ids, name="patient_id"),
    )
    statics.loc[statics.index[::7], "Weight"] = np.nan  # some missing statics
    rows = []
    for pid in ids:
        k = int(rng.integers(3, 9))
        minutes = np.sort(rng.choice(np.arange(1, 47 * 60), size=k, replace=False))
        hours = minutes / 60.0 if minute_times else rng.uniform(0.01, 47.9, k)
        for h in hours:
            rows += [
                (pid, h, "HR", float(rng.integers(50, 130))),
                (pid, h, "SBP", float(np.round(rng.uniform(80, 180), 2))),
                (pid, h, "Temp", float(np.round(rng.uniform(35, 40), 1))),
            ]
            if rng.random() < 0.4:
                rows.append((pid, h, "GCS", float(rng.integers(3, 16))))
            if rng.random() < 0.3:
                rows.append((pid, h, "Vent", float(rng.integers(0, 2))))
            if rng.random() < 0.2:
                rows.append((pid, h, "Weight", float(np.round(rng.uniform(45, 130), 1))))
    obs = pd.DataFrame(rows, columns=["patient_id", "hours", "variable", "value"])
    obs = obs.sort_values(["patient_id", "hours", "variable"]).reset_index(drop=True)
    return Cohort(schema=schema, statics=statics, observations=obs)


def write_long_rows(path: Path, rows: list[tuple], header=("pid", "t", "var", "val")) -> Path:
    """A long CSV from literal rows (strings kept as written)."""
    pd.DataFrame(rows, columns=list(header)).to_csv(path, index=False)
    return path


def many_patients_file(path: Path, n: int, seed: int = 0) -> Path:
    """A long (hours) file with ``n`` patients, a few rows each: window tests in milliseconds."""
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"p{i:05d}" for i in range(n)], 4)
    kinds = np.tile(["Age", "Death", "HR", "HR"], n)
    times = np.tile([0.0, 0.0, 1.0, 2.0], n)
    values = np.where(
        kinds == "Age", 60, np.where(kinds == "Death", rng.integers(0, 2, ids.size), 80)
    )
    frame = pd.DataFrame({"pid": ids, "t": times, "var": kinds, "val": values})
    frame.to_csv(path, index=False)
    return path
