"""``clinsynth generate`` and ``generate_run``: run directory, manifest, refusal to overwrite."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from factories import flat
from typer.testing import CliRunner

from clinsynth.cli import app
from clinsynth.generation import generate_run
from clinsynth.io import sha256_file
from clinsynth.loader import load_cohort
from clinsynth.runs import load_real_split, load_synthetic, read_manifest
from clinsynth.simulate import write_sample

runner = CliRunner()
FAST = ["--epochs", "1", "--n", "30"]
MANIFEST_KEYS = {
    "clinsynth_run", "created", "command", "input", "config", "seeds", "privacy", "versions",
    "timings", "files",
}  # fmt: skip
INPUT_KEYS = {
    "data", "outcomes", "schema_name", "schema_fingerprint", "schema", "subsample",
    "subsample_seed", "holdout", "n_patients", "cleaning",
}  # fmt: skip
PRIVACY_KEYS = {
    "epsilon", "delta", "accountant", "noise_multiplier", "max_grad_norm", "sample_rate",
    "epochs", "steps", "public", "dp_sgd",
}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "cohort.csv.gz"
    write_sample(path, 500, seed=5)  # the loader's window needs >= 500 patients
    return path


@pytest.fixture(scope="module")
def run_dir(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run1"
    result = runner.invoke(
        app, ["generate", str(data), "--schema", "icu_sim", "--out", str(out), *FAST]
    )
    assert result.exit_code == 0, result.output
    assert "ε spent" in result.output and str(out) in flat(result.output)
    return out


def test_run_directory_layout_and_manifest(run_dir: Path, data: Path) -> None:
    assert (run_dir / "model.pt").is_file() and (run_dir / "synthetic" / "cohort.csv").is_file()
    manifest = read_manifest(run_dir)
    assert set(manifest) >= MANIFEST_KEYS
    assert set(manifest["input"]) >= INPUT_KEYS
    assert set(manifest["privacy"]) >= PRIVACY_KEYS
    inp = manifest["input"]
    assert inp["data"]["sha256"] == sha256_file(data)
    assert inp["holdout"] == {"fraction": 0.2, "seed": 0}
    assert inp["n_patients"] == {"loaded": 500, "train": 400, "holdout": 100}
    privacy = manifest["privacy"]
    assert 0 < privacy["epsilon"] <= 4.0 and privacy["delta"] == pytest.approx(1 / 4000)
    assert manifest["config"]["n_synthetic"] == 30 and manifest["config"]["epochs"] == 1
    kept = manifest["rules_kept_while_sampling"]  # counted, not hidden
    assert set(kept["variables"]) <= {"DiasABP", "MAP", "NIDiasABP", "NIMAP", "FiO2"}
    assert all(t["cells_bounded"] >= t["redrawn"] >= 0 for t in kept["variables"].values())
    for rel, digest in manifest["files"].items():
        assert sha256_file(run_dir / rel) == digest
    assert set(manifest["files"]) >= {"model.pt", "synthetic/cohort.csv"}


def test_run_is_readable_by_the_audit_side(run_dir: Path) -> None:
    manifest = read_manifest(run_dir)
    train, holdout = load_real_split(manifest)
    assert (train.n_patients, holdout.n_patients) == (400, 100)
    synthetic = load_synthetic(run_dir, train.schema)
    assert synthetic.n_patients == 30


def test_no_real_patient_id_in_the_run(run_dir: Path, data: Path) -> None:
    real = load_cohort(data, "icu_sim", progress=False)
    text = (run_dir / "manifest.json").read_text() + (run_dir / "synthetic/cohort.csv").read_text()
    tokens = set(re.findall(r"[A-Za-z0-9_]+", text))
    assert not tokens & set(real.patient_ids)


def test_refuses_to_overwrite_a_run(run_dir: Path, data: Path) -> None:
    before = (run_dir / "manifest.json").read_bytes()
    result = runner.invoke(
        app, ["generate", str(data), "--schema", "icu_sim", "--out", str(run_dir), *FAST]
    )
    assert result.exit_code != 0
    assert "already exists" in flat(result.output) and "Traceback" not in result.output
    assert (run_dir / "manifest.json").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epsilon", "0"], "epsilon must be a positive"),
        (["--n", "0"], "positive number of synthetic stays"),
        (["--holdout", "1.5"], "holdout fraction"),
        (["--schema", "no_such_schema"], "Unknown schema"),
    ],
)
def test_bad_options_refused_before_any_work(
    data: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "run"
    base = ["generate", str(data), "--schema", "icu_sim", "--out", str(out), "--epochs", "1"]
    result = runner.invoke(app, base + args)
    assert result.exit_code != 0
    assert message in flat(result.output) and "Traceback" not in result.output
    assert not out.exists()


def test_same_seed_same_synthetic_bytes_and_no_dp_is_recorded(
    data: Path, run_dir: Path, tmp_path: Path
) -> None:
    again = generate_run(data, "icu_sim", tmp_path / "again", epochs=1, n=30, progress=False)
    assert sha256_file(again / "synthetic/cohort.csv") == sha256_file(
        run_dir / "synthetic/cohort.csv"
    )
    with pytest.warns(UserWarning, match="WITHOUT differential privacy"):
        unsafe = generate_run(
            data, "icu_sim", tmp_path / "nodp", epochs=1, n=10, dp=False, progress=False
        )
    privacy = json.loads((unsafe / "manifest.json").read_text())["privacy"]
    assert privacy["dp"] is False and privacy["epsilon"] == "infinity"
