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


@pytest.fixture(scope="session")
def simulated_model_space():
    """300 simulated stays in model space: (encoding, values, mask, static codes), as training
    sees them (dequantised, encoded, with the severity score's class)."""
    import numpy as np

    from clinsynth.generator import severity
    from clinsynth.generator.encoding import Encoding
    from clinsynth.grid import to_grid
    from clinsynth.simulate import simulate_cohort

    cohort = simulate_cohort(300, seed=5)
    enc = Encoding.from_schema(cohort.schema)
    grid = to_grid(cohort)
    x, m = enc.encode_series(enc.dequantise(grid.values, np.random.default_rng(0)))
    codes = enc.encode_statics(grid.statics, severity.score(x, m, enc.indices("gauss")))
    return enc, x, m, codes
