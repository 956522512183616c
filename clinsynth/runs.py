"""The run directory: where generate, audit and export meet (layout in DESIGN.md).

Real patient IDs are never written here: the members/non-members split is re-derived from the
input file named in the manifest (its hash is checked) and the recorded split seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinsynth.cohort import Cohort
from clinsynth.errors import ClinsynthError
from clinsynth.io import read_json, sha256_file, write_json_atomic
from clinsynth.schema import Schema, parse_schema

MANIFEST = "manifest.json"
MODEL_FILE = "model.pt"
SYNTHETIC_DIR = "synthetic"
AUDIT_JSON = "audit.json"
AUDIT_HTML = "audit.html"


def manifest_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / MANIFEST


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    path = manifest_path(run_dir)
    if not path.is_file():
        raise ClinsynthError(
            f"{run_dir} is not a clinsynth run directory (no {MANIFEST}). "
            "Create one with `clinsynth generate`."
        )
    return read_json(path)


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(manifest_path(run_dir), manifest)


def update_manifest(run_dir: str | Path, **sections: Any) -> dict[str, Any]:
    """Set top-level sections of the manifest (e.g. ``audit=...``) and rewrite it atomically."""
    manifest = read_manifest(run_dir)
    manifest.update(sections)
    write_manifest(run_dir, manifest)
    return manifest


def hash_files(directory: str | Path, exclude: tuple[str, ...] = (MANIFEST,)) -> dict[str, str]:
    """SHA-256 of every file below ``directory`` (relative POSIX paths), hidden files excluded."""
    directory = Path(directory)
    hashes = {}
    for path in sorted(directory.rglob("*")):
        rel_path = path.relative_to(directory)
        rel = rel_path.as_posix()
        hidden = any(part.startswith(".") for part in rel_path.parts)
        if path.is_file() and rel not in exclude and not hidden:
            hashes[rel] = sha256_file(path)
    return hashes


def schema_from_manifest(manifest: dict[str, Any]) -> Schema:
    """The exact schema the run used (stored whole in the manifest, so later edits don't matter)."""
    try:
        return parse_schema(manifest["input"]["schema"], "recorded in the run manifest")
    except KeyError:
        raise ClinsynthError("The run manifest has no recorded schema; was it edited?") from None


def load_real_split(manifest: dict[str, Any]) -> tuple[Cohort, Cohort]:
    """Re-load the run's real input and re-derive (training members, held-out non-members)."""
    from clinsynth.loader import load_cohort

    inp = manifest["input"]
    data_path = Path(inp["data"]["path"])
    if not data_path.is_file():
        raise ClinsynthError(
            f"The real input {data_path} named in the manifest is gone; the audit needs it to "
            "compare members and non-members."
        )
    if sha256_file(data_path) != inp["data"]["sha256"]:
        raise ClinsynthError(
            f"The real input {data_path} changed since the run was generated (hash mismatch); "
            "the audit would compare against the wrong patients."
        )
    outcomes = inp.get("outcomes")
    cohort = load_cohort(
        data_path,
        schema_from_manifest(manifest),
        outcomes_path=Path(outcomes["path"]) if outcomes else None,
        subsample=inp.get("subsample"),
        seed=inp.get("subsample_seed", 0),
        # the same lineage allowance generate used, or a mixed input could not be re-loaded
        allow_synthetic_fraction=(manifest.get("lineage") or {}).get(
            "allow_synthetic_fraction", 0.0
        ),
    )
    split = inp["holdout"]
    return cohort.split(split["fraction"], split["seed"])


def load_synthetic(run_dir: str | Path, schema: Schema) -> Cohort:
    """Read the run's synthetic cohort back through the loader (window not enforced)."""
    from clinsynth.loader import load_cohort

    folder = Path(run_dir) / SYNTHETIC_DIR
    main = folder / "cohort.csv"
    if not main.is_file():
        raise ClinsynthError(f"{run_dir} has no synthetic cohort ({main} is missing).")
    outcomes = folder / "outcomes.csv"
    return load_cohort(
        main,
        schema,
        outcomes_path=outcomes if outcomes.is_file() else None,
        enforce_window=False,
    )
