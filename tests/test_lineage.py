"""Lineage: markers, fingerprints, registry, the loader's refusal to train on clinsynth output,
the allowance flag, and `clinsynth lineage`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import make_cohort, make_schema, many_patients_file, write_schema
from fake_runs import make_run
from typer.testing import CliRunner

from clinsynth.cli import app
from clinsynth.cohort import Cohort
from clinsynth.export import export_run
from clinsynth.io import sha256_file
from clinsynth.lineage import (
    MARKER_COLUMN,
    SyntheticDataRefused,
    detect_lineage,
    lineage_id,
    make_marker,
    parse_marker,
    patient_fingerprints,
    read_registry,
    stamp,
)
from clinsynth.lineage.accounting import export_section, prepare_export, record_export
from clinsynth.loader import load_cohort
from clinsynth.runs import load_real_split, read_manifest, update_manifest
from clinsynth.simulate import simulate_cohort, write_sample
from clinsynth.writer import write_cohort

runner = CliRunner()


def _rekey(cohort: Cohort, prefix: str) -> Cohort:
    mapping = {p: f"{prefix}{i}" for i, p in enumerate(cohort.patient_ids)}
    obs = cohort.observations.assign(patient_id=cohort.observations["patient_id"].map(mapping))
    return Cohort(cohort.schema, cohort.statics.rename(index=mapping), obs)


def fake_export(cohort: Cohort, folder: Path, run_id: str = "run-A", depth: int = 1) -> Path:
    """What the export step does for lineage: stamp, write, fingerprint the files, register."""
    stamped, lineage = prepare_export(
        cohort, {"clinsynth_run": run_id, "lineage": {"depth": depth}}
    )
    files = write_cohort(stamped, folder)
    outcomes = files[1] if len(files) > 1 else None
    back = load_cohort(files[0], cohort.schema, outcomes, enforce_window=False, progress=False)
    export_section(lineage, back)
    hashes = {p.name: sha256_file(p) for p in files}
    record_export(lineage, f"{run_id}-export", "2030-01-02T00:00:00+00:00",
                  folder / "manifest.json", cohort.schema.name, hashes)  # fmt: skip
    return files[0]


def _raw(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str)


def _mixed_file(real: Path, exported: Path, folder: Path, n_synth: int, strip: bool) -> Path:
    """A real long file with the rows of ``n_synth`` exported patients appended (re-keyed)."""
    syn = _raw(exported)
    keep = syn["pid"].drop_duplicates().iloc[:n_synth]
    syn = syn[syn["pid"].isin(keep)].assign(pid=lambda f: "X" + f["pid"])
    if strip:
        syn = syn.drop(columns=MARKER_COLUMN)
    mixed = pd.concat([_raw(real), syn], ignore_index=True)
    path = folder / "mixed.csv"
    mixed.to_csv(path, index=False)
    return path


@pytest.fixture
def schema():
    return make_schema()


@pytest.fixture
def files(tmp_path: Path, schema) -> dict[str, Path]:
    real = write_cohort(make_cohort(60, schema, seed=1), tmp_path / "real")[0]
    exported = fake_export(make_cohort(40, schema, seed=2), tmp_path / "export")
    return {"real": real, "export": exported}


# --------------------------------------------------------------------------- markers


def test_marker_format_and_parsing() -> None:
    marker = make_marker(lineage_id("some-run"), 2)
    assert parse_marker(marker).depth == 2
    assert parse_marker(marker).lineage_id == lineage_id("some-run") != lineage_id("other")
    assert parse_marker("") is None and parse_marker(float("nan")) is None
    edited = parse_marker("made by hand")
    assert edited is not None and not edited.well_formed and edited.depth == 1
    with pytest.raises(ValueError):
        make_marker("cs-000000000000", 0)


@pytest.mark.parametrize("fmt", ["long", "wide"])
def test_writer_round_trip_keeps_markers_and_values(tmp_path: Path, fmt: str) -> None:
    schema = make_schema(fmt=fmt, outcomes_file=True)
    cohort = make_cohort(25, schema, seed=3)
    marker = make_marker(lineage_id("r"), 1)
    files = write_cohort(stamp(cohort, marker), tmp_path / "marked")
    plain = write_cohort(cohort, tmp_path / "plain")
    assert MARKER_COLUMN in _raw(files[0]).columns and MARKER_COLUMN in _raw(files[1]).columns
    assert MARKER_COLUMN not in _raw(plain[0]).columns
    assert (_raw(files[0])[MARKER_COLUMN] == marker).all()

    back = load_cohort(files[0], schema, files[1], enforce_window=False, progress=False)
    again = load_cohort(plain[0], schema, plain[1], enforce_window=False, progress=False)
    assert back.content_hash() == again.content_hash()  # the column is not data
    assert back.report.total("unknown_variable") == 0
    assert not any(MARKER_COLUMN in note for note in back.report.notes)
    lineage = back.provenance["lineage"]
    assert lineage["synthetic_patients"] == 25 and lineage["max_depth"] == 1
    # a load/write round trip cannot launder the marker
    rewritten = write_cohort(back, tmp_path / "again")
    assert (_raw(rewritten[0])[MARKER_COLUMN] == marker).all()


# --------------------------------------------------------------------------- fingerprints


def test_fingerprints_survive_rekeying_row_order_and_round_trip(tmp_path: Path, schema) -> None:
    cohort = make_cohort(20, schema, seed=4)
    fps = patient_fingerprints(cohort)
    assert len(set(fps.values())) == 20
    rekeyed = _rekey(cohort, "new")
    shuffled = rekeyed.observations.sample(frac=1.0, random_state=0)
    rekeyed = Cohort(schema, rekeyed.statics.iloc[::-1], shuffled)
    assert sorted(patient_fingerprints(rekeyed).values()) == sorted(fps.values())
    main = write_cohort(cohort, tmp_path)[0]
    back = load_cohort(main, schema, enforce_window=False, progress=False)
    assert patient_fingerprints(back) == fps
    changed = cohort.observations.copy()
    changed.loc[0, "value"] += 1
    first = cohort.patient_ids[0]
    altered = patient_fingerprints(Cohort(schema, cohort.statics, changed))
    assert altered[first] != fps[first]
    assert all(altered[p] == fps[p] for p in cohort.patient_ids[1:])


# --------------------------------------------------------------------------- refusal


def test_loader_refuses_to_train_on_an_export(files, schema) -> None:
    with pytest.raises(SyntheticDataRefused) as info:
        load_cohort(files["export"], schema, enforce_window=False, purpose="train")
    message = str(info.value)
    assert "40 patients made by clinsynth" in message and lineage_id("run-A") in message
    assert "--allow-synthetic-fraction" in message and "generation depth 1" in message
    assert info.value.exit_code == 3
    # reading it (audits, export round trip) is fine and records the lineage
    read = load_cohort(files["export"], schema, enforce_window=False, progress=False)
    assert read.provenance["lineage"]["synthetic_fraction"] == 1.0


def test_default_purpose_of_a_windowed_load_is_training(tmp_path: Path, files, schema) -> None:
    # a small export: the lineage refusal comes before the (less helpful) window refusal
    with pytest.raises(SyntheticDataRefused):
        load_cohort(files["export"], schema, progress=False)


@pytest.mark.parametrize("strip", [False, True], ids=["with marker", "marker stripped"])
def test_loader_refuses_real_file_with_exported_patients_mixed_in(
    tmp_path: Path, files, schema, strip: bool
) -> None:
    mixed = _mixed_file(files["real"], files["export"], tmp_path, n_synth=3, strip=strip)
    with pytest.raises(SyntheticDataRefused) as info:
        load_cohort(mixed, schema, enforce_window=False, purpose="train", progress=False)
    assert "3 patients made by clinsynth" in str(info.value)
    expected = "content fingerprints in the export registry" if strip else "clinsynth_run column"
    assert expected in str(info.value)


def test_stripped_marker_is_only_caught_through_the_registry(
    tmp_path: Path, files, schema, monkeypatch
) -> None:
    mixed = _mixed_file(files["real"], files["export"], tmp_path, n_synth=3, strip=True)
    monkeypatch.setenv("CLINSYNTH_REGISTRY", str(tmp_path / "elsewhere.jsonl"))
    cohort = load_cohort(mixed, schema, enforce_window=False, purpose="train", progress=False)
    assert cohort.provenance["lineage"]["synthetic_patients"] == 0


def test_allowance_admits_and_records_fraction_and_depth(tmp_path: Path, files, schema) -> None:
    mixed = _mixed_file(files["real"], files["export"], tmp_path, n_synth=3, strip=True)
    with pytest.raises(SyntheticDataRefused):
        load_cohort(mixed, schema, enforce_window=False, purpose="train",
                    allow_synthetic_fraction=0.04, progress=False)  # fmt: skip
    cohort = load_cohort(mixed, schema, enforce_window=False, purpose="train",
                         allow_synthetic_fraction=0.05, progress=False)  # fmt: skip
    lineage = cohort.provenance["lineage"]
    assert lineage["synthetic_patients"] == 3
    assert lineage["synthetic_fraction"] == pytest.approx(3 / 63, abs=1e-6)
    assert lineage["allowed_fraction"] == 0.05
    assert lineage["max_depth"] == 1 and lineage["generation_depth"] == 2
    assert lineage["runs"][0]["detected_by"] == {"marker": 0, "registry": 3}
    assert lineage["runs"][0]["exports"][0]["manifest"].endswith("manifest.json")
    assert "Xp0" not in json.dumps(lineage)  # no patient ids in the summary


def test_depth_follows_the_deepest_generation(tmp_path: Path, schema) -> None:
    real = make_cohort(30, schema, seed=5)
    deep = stamp(_rekey(make_cohort(10, schema, seed=6), "d"), make_marker(lineage_id("g2"), 2))
    both = Cohort(
        schema,
        pd.concat([real.statics, deep.statics]),
        pd.concat([real.observations, deep.observations], ignore_index=True),
        provenance=deep.provenance,
    )
    report = detect_lineage(both)
    assert (report.n_synthetic, report.max_depth, report.next_depth) == (10, 2, 3)
    assert report.fraction == pytest.approx(0.25)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_allowance_must_be_a_fraction(files, schema, bad: float) -> None:
    with pytest.raises(Exception, match="allow-synthetic-fraction"):
        load_cohort(files["real"], schema, enforce_window=False, allow_synthetic_fraction=bad)


def test_subsample_counts_what_is_kept(tmp_path: Path, schema) -> None:
    """The allowance is checked on the file and again on the seeded subsample actually kept."""
    path = many_patients_file(tmp_path / "many.csv", 600)
    frame = pd.read_csv(path, dtype=str)
    marked = frame["pid"].isin([f"p{i:05d}" for i in range(0, 600, 20)])  # 30 of 600 (5%)
    frame[MARKER_COLUMN] = np.where(marked, make_marker(lineage_id("x"), 1), "")
    frame.to_csv(path, index=False)
    cohort = load_cohort(path, schema, subsample=500, allow_synthetic_fraction=0.2, progress=False)
    lineage = cohort.provenance["lineage"]
    assert lineage["patients"] == 500
    kept = sum(p in set(frame.loc[marked, "pid"]) for p in cohort.patient_ids)
    assert 0 < kept < 30
    assert lineage["synthetic_patients"] == kept


# --------------------------------------------------------------------------- registry


def test_registry_entry_and_unreadable_lines(files, private_registry: Path) -> None:
    registry = read_registry()
    assert registry.path == private_registry and len(registry.entries) == 1
    entry = registry.entries[0]
    assert entry.depth == 1 and len(entry.fingerprints) == 40
    with open(private_registry, "a") as fh:
        fh.write("{not json\n")
    assert read_registry().unreadable_lines == 1 and len(read_registry().entries) == 1


# --------------------------------------------------------------------------- the command


def test_lineage_of_a_plain_real_file(tmp_path: Path, files) -> None:
    schema_file = write_schema(tmp_path / "tiny.yaml")
    result = runner.invoke(app, ["lineage", str(files["real"]), "--schema", str(schema_file)])
    assert result.exit_code == 0, result.output
    assert "no clinsynth lineage found" in result.output


def test_lineage_of_an_export_and_of_a_mixed_file(tmp_path: Path, files) -> None:
    schema_file = write_schema(tmp_path / "tiny.yaml")
    result = runner.invoke(app, ["lineage", str(files["export"]), "--schema", str(schema_file)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "byte-identical" in text and "40 of 40 patients (100.0%)" in text
    assert lineage_id("run-A") in text and "2030-01-02" in text

    mixed = _mixed_file(files["real"], files["export"], tmp_path, n_synth=3, strip=True)
    result = runner.invoke(app, ["lineage", str(mixed), "--schema", str(schema_file)])
    text = " ".join(result.output.split())
    assert "3 of 63 patients (4.8%)" in text and "no clinsynth lineage found" not in text

    schemaless = runner.invoke(app, ["lineage", str(files["export"])])
    assert make_marker(lineage_id("run-A"), 1) in schemaless.output


# --------------------------------------------------------------------------- export and generate


def test_export_stamps_fingerprints_and_registers(tmp_path: Path) -> None:
    schema = make_schema(outcomes_file=True)
    run = make_run(tmp_path, make_cohort(40, schema, seed=7), flagged=("p0003",))
    summary = export_run(run, tmp_path / "export")
    manifest = read_manifest(tmp_path / "export")
    section = manifest["lineage"]
    assert section["generation_depth"] == 1 and section["marker_column"] == MARKER_COLUMN
    assert len(section["fingerprints"]) == summary.n_exported == 39
    for name in ("cohort.csv", "outcomes.csv"):
        column = _raw(tmp_path / "export" / name)[MARKER_COLUMN]
        assert (column == section["marker"]).all()
    (entry,) = read_registry().entries
    assert entry.manifest == str(summary.manifest.resolve())
    assert set(entry.fingerprints) == set(section["fingerprints"].values())
    assert entry.files["cohort.csv"] == sha256_file(tmp_path / "export" / "cohort.csv")

    exported = tmp_path / "export" / "cohort.csv"
    with pytest.raises(SyntheticDataRefused):
        load_cohort(exported, schema, tmp_path / "export" / "outcomes.csv", purpose="train",
                    enforce_window=False, progress=False)  # fmt: skip
    real = write_cohort(make_cohort(50, schema, seed=8), tmp_path / "real")
    mixed = _mixed_file(real[0], exported, tmp_path, n_synth=2, strip=True)
    with pytest.raises(SyntheticDataRefused, match="2 patients made by clinsynth"):
        load_cohort(mixed, schema, real[1], purpose="train", enforce_window=False, progress=False)


def test_export_of_a_deeper_run_carries_its_depth(tmp_path: Path) -> None:
    schema = make_schema()
    run = make_run(tmp_path, make_cohort(30, schema, seed=9))
    marker = make_marker(lineage_id("a run trained on synthetic data"), 2)
    update_manifest(run, lineage={"depth": 2, "marker": marker})
    export_run(run, tmp_path / "export")
    assert read_manifest(tmp_path / "export")["lineage"]["generation_depth"] == 2
    assert (_raw(tmp_path / "export" / "cohort.csv")[MARKER_COLUMN] == marker).all()
    assert read_registry().entries[0].depth == 2


@pytest.mark.slow
def test_generate_with_allowance_records_fraction_and_depth(tmp_path: Path) -> None:
    """A real file with 20 clinsynth-made stays mixed in: refused before any training without the
    flag; with it, trained, recorded (fraction, depth 2), output stamped, audit can re-load it."""
    data = tmp_path / "mixed.csv"
    write_sample(tmp_path / "real.csv.gz", 500, seed=5)
    synthetic = _rekey(simulate_cohort(20, 11), "SYN-")
    made = write_cohort(stamp(synthetic, make_marker(lineage_id("earlier"), 1)), tmp_path / "s")
    pd.concat([_raw(tmp_path / "real.csv.gz"), _raw(made[0])]).to_csv(data, index=False)
    args = ["generate", str(data), "--schema", "icu_sim", "--epochs", "1", "--n", "30"]
    refused = runner.invoke(app, [*args, "--out", str(tmp_path / "refused")])
    assert refused.exit_code == 3 and "20 patients made by clinsynth" in " ".join(
        refused.output.split()
    )
    assert not (tmp_path / "refused").exists()

    run = tmp_path / "run"
    allowed = ["--allow-synthetic-fraction", "0.05", "--out", str(run)]
    result = runner.invoke(app, [*args, *allowed])
    assert result.exit_code == 0, result.output
    assert "generation depth 2" in " ".join(result.output.split())
    lineage = read_manifest(run)["lineage"]
    assert lineage["allow_synthetic_fraction"] == 0.05 and lineage["depth"] == 2
    assert lineage["input"]["synthetic_patients"] == 20
    assert lineage["input"]["synthetic_fraction"] == pytest.approx(20 / 520, abs=1e-6)
    assert 0 < lineage["training"]["synthetic_patients"] <= 20
    out = _raw(run / "synthetic" / "cohort.csv")[MARKER_COLUMN]
    assert (out == lineage["marker"]).all() and lineage["marker"].endswith(":d2")
    train, holdout = load_real_split(read_manifest(run))  # the audit's re-load is not refused
    assert train.n_patients + holdout.n_patients == 520
