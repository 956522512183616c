"""Generator engines behind one estimator surface, picked by name (`clinsynth generate --engine`).

Every engine has ``fit(cohort, progress=None) -> self``, ``sample(n, seed=None) -> Cohort``,
``privacy_report() -> dict`` (``dp`` and ``epsilon``, ``inf`` without DP: what the export gate
reads from the manifest), ``save(path) -> Path`` (one file) and a classmethod ``load(path)``.
"clinsynth" (our DP ``SequenceSynthesizer``) is the default; "par" (SDV's PARSynthesizer) is a
baseline that is NOT differentially private. Imports are lazy so that choosing one engine never
pays for importing the other (SDV alone takes seconds).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from clinsynth.cohort import Cohort
from clinsynth.errors import ClinsynthError
from clinsynth.schema import Schema

DEFAULT_ENGINE = "clinsynth"


class Engine(Protocol):
    """The estimator surface generation relies on (SequenceSynthesizer's)."""

    def fit(self, cohort: Cohort, progress: Any = None) -> Engine: ...
    def sample(self, n: int, seed: int | None = None) -> Cohort: ...
    def privacy_report(self) -> dict[str, Any]: ...
    def save(self, path: str | Path) -> Path: ...


def _engine_class(name: str) -> type:
    if name == "clinsynth":
        from clinsynth.generator import SequenceSynthesizer

        return SequenceSynthesizer
    if name == "par":
        from clinsynth.engines.par import PARBaseline

        return PARBaseline
    raise KeyError(name)


def _clinsynth(schema: Schema, seed: int = 0, epochs: int | None = None, **kw: Any) -> Engine:
    cls = _engine_class("clinsynth")
    if epochs is not None:
        kw["epochs"] = epochs
    return cls(schema, seed=seed, **kw)


def _par(schema: Schema, seed: int = 0, epochs: int | None = None, **kw: Any) -> Engine:
    """PAR has no privacy knobs: DP-only options (epsilon, delta, batch size...) are dropped and
    listed in ``ignored_options`` (shown in its privacy report) rather than refused, so the same
    generate command line works for both engines."""
    cls = _engine_class("par")
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "schema"}
    ignored = sorted(k for k in kw if k not in accepted)
    options = {k: v for k, v in kw.items() if k in accepted}
    if epochs is not None:
        options["epochs"] = epochs
    engine = cls(schema, seed=seed, **options)
    engine.ignored_options = ignored
    return engine


EngineFactory = Callable[..., Engine]
ENGINES: dict[str, EngineFactory] = {"clinsynth": _clinsynth, "par": _par}


def _check_name(name: str) -> None:
    if name not in ENGINES:
        raise ClinsynthError(
            f"Unknown engine '{name}'. Choose one of: {', '.join(ENGINES)} "
            f"(default {DEFAULT_ENGINE}; 'par' is SDV's PARSynthesizer, which is not "
            "differentially private)."
        )


def make_engine(
    name: str, schema: Schema, seed: int = 0, epochs: int | None = None, **kw: Any
) -> Engine:
    """Build an unfitted engine by name; a clear error for unknown names."""
    _check_name(name)
    return ENGINES[name](schema, seed=seed, epochs=epochs, **kw)


def load_engine(name: str, path: str | Path) -> Engine:
    """Load a saved model of the named engine (the name is recorded in the run manifest)."""
    _check_name(name)
    return _engine_class(name).load(path)
