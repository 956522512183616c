"""Shared test setup: no test may read or write the user's real lineage registry."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_registry(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> Path:
    """Point ``$CLINSYNTH_REGISTRY`` at a fresh file: exports made by one test must not make
    another test's cohort look synthetic, and ``~/.clinsynth`` is never touched."""
    path = tmp_path_factory.mktemp("registry") / "registry.jsonl"
    monkeypatch.setenv("CLINSYNTH_REGISTRY", str(path))
    return path
