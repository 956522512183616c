"""Shared test setup: no test may read or write the user's real lineage registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REGISTRY_ENV = "CLINSYNTH_REGISTRY"


@pytest.fixture(scope="session", autouse=True)
def session_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Module- and session-scoped fixtures (which run before function fixtures) get a registry
    in a temporary folder too, so ``~/.clinsynth`` is never touched by the tests."""
    path = tmp_path_factory.mktemp("registry-session") / "registry.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(REGISTRY_ENV, str(path))
        yield path


@pytest.fixture(autouse=True)
def private_registry(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh registry per test: exports made by one test must not make another test's cohort
    look synthetic."""
    path = tmp_path_factory.mktemp("registry") / "registry.jsonl"
    monkeypatch.setenv(REGISTRY_ENV, str(path))
    return path
