"""The local registry of exports: what lets a file whose marker column was stripped be recognised.

One JSON object per line (JSONL) at ``$CLINSYNTH_REGISTRY``, else ``~/.clinsynth/registry.jsonl``.
Each export appends its lineage id, generation depth, source run, date, manifest path, file
hashes and one fingerprint per exported patient. Appends are locked (``fcntl.flock``) so two
exports on one machine never interleave; unreadable lines are skipped and reported, never fatal.
The registry holds synthetic patients' fingerprints only — nothing about real patients.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinsynth.errors import ClinsynthError

ENV_VAR = "CLINSYNTH_REGISTRY"
REGISTRY_VERSION = 1


def registry_path() -> Path:
    """Where the registry lives (``$CLINSYNTH_REGISTRY`` wins; tests point it into a tmp dir)."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".clinsynth" / "registry.jsonl"


@dataclass
class RegistryEntry:
    """One registered export."""

    lineage_id: str
    depth: int
    export_id: str
    run_id: str | None
    created: str
    manifest: str | None
    schema_name: str
    fingerprints: list[str]
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"registry_version": REGISTRY_VERSION, **self.__dict__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegistryEntry:
        return cls(
            lineage_id=str(data["lineage_id"]),
            depth=int(data["depth"]),
            export_id=str(data.get("export_id", "")),
            run_id=data.get("run_id"),
            created=str(data.get("created", "")),
            manifest=data.get("manifest"),
            schema_name=str(data.get("schema_name", "")),
            fingerprints=[str(f) for f in data.get("fingerprints", [])],
            files={str(k): str(v) for k, v in (data.get("files") or {}).items()},
        )


@dataclass
class Registry:
    """The parsed registry: entries plus lookup tables, and how many lines could not be read."""

    path: Path
    entries: list[RegistryEntry] = field(default_factory=list)
    unreadable_lines: int = 0

    def __post_init__(self) -> None:
        self._by_fingerprint: dict[str, int] = {}
        self._by_file_hash: dict[str, int] = {}
        for i, entry in enumerate(self.entries):
            for fp in entry.fingerprints:
                self._by_fingerprint.setdefault(fp, i)
            for digest in entry.files.values():
                self._by_file_hash.setdefault(digest, i)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def match_fingerprint(self, fingerprint: str) -> RegistryEntry | None:
        i = self._by_fingerprint.get(fingerprint)
        return None if i is None else self.entries[i]

    def match_file_hash(self, sha256: str) -> RegistryEntry | None:
        i = self._by_file_hash.get(sha256)
        return None if i is None else self.entries[i]

    def by_lineage_id(self, lineage: str) -> list[RegistryEntry]:
        return [e for e in self.entries if e.lineage_id == lineage]


def read_registry(path: str | Path | None = None) -> Registry:
    """The registry at ``path`` (default: :func:`registry_path`); empty when there is none."""
    path = Path(path) if path is not None else registry_path()
    if not path.is_file():
        return Registry(path=path)
    entries, bad = [], 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                entries.append(RegistryEntry.from_json(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                bad += 1
    return Registry(path=path, entries=entries, unreadable_lines=bad)


def register_export(entry: RegistryEntry, path: str | Path | None = None) -> Path:
    """Append ``entry`` to the registry (created on first use); returns the registry path."""
    path = Path(path) if path is not None else registry_path()
    line = json.dumps(entry.to_json(), separators=(",", ":"), sort_keys=True) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    except OSError as exc:
        raise ClinsynthError(
            f"Could not record the export in the lineage registry {path} ({exc}). The files were "
            "written, but without a registry entry clinsynth recognises them only by their "
            "clinsynth_run column, not once that column is removed. Make the folder writable "
            f"(or point ${ENV_VAR} to a writable file) and export again with --force."
        ) from None
    return path
