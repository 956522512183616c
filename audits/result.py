"""What an audit returns: checks with verdicts, the synthetic IDs to drop, per-variable tables.

Everything in ``to_dict()`` is aggregate (rates, distances, per-variable numbers) or a *synthetic*
ID: no real patient ID or real record content ever reaches audit.json. Figure data (curves,
histograms, percentile bands) stays in memory for the HTML report and is not serialised, nor are
the timings (so the same inputs and seed give a byte-identical audit.json).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

Direction = Literal["max", "min"]


@dataclass(frozen=True)
class Measurement:
    """One number an audit family measured, before the policy judges it.

    ``noise`` is the sampling-noise allowance at the audit's sample sizes: the effective threshold
    is never stricter than it (a real held-out cohort must not fail by chance on a small cohort).
    ``applicable=False`` marks a measurement that cannot be made on these data (no binary outcome,
    no variable with enough data...): it is reported as "n/a" and never decides the verdict.
    """

    name: str
    value: float
    details: str = ""
    noise: float | None = None
    applicable: bool = True


@dataclass(frozen=True)
class Check:
    """A measurement judged against its policy threshold."""

    name: str
    family: str
    value: float
    threshold: float | None
    direction: Direction
    passed: bool | None
    required: bool
    details: str = ""
    description: str = ""
    policy_threshold: float | None = None

    @property
    def status(self) -> str:
        if self.passed is None:
            return "n/a"
        return "pass" if self.passed else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "value": _json_float(self.value),
            "threshold": _json_float(self.threshold),
            "policy_threshold": _json_float(self.policy_threshold),
            "direction": self.direction,
            "passed": self.passed,
            "required": self.required,
            "details": self.details,
            "description": self.description,
        }


@dataclass
class FamilyOutput:
    """What one audit family hands back: measurements, readable tables, figure data."""

    measurements: list[Measurement] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    plots: dict[str, Any] = field(default_factory=dict)
    flagged_synthetic_ids: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditResult:
    """The outcome of ``run_audits``: read ``passed`` and, if it is False, ``failed_checks``."""

    checks: list[Check]
    flagged_synthetic_ids: list[str]
    tables: dict[str, pd.DataFrame]
    policy_name: str
    meta: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, Any] = field(default_factory=dict, repr=False)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True only if every required check that could be evaluated passed."""
        return all(c.passed is None or bool(c.passed) for c in self.checks if c.required)

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if c.passed is not None and not c.passed]

    @property
    def failed_required(self) -> list[Check]:
        return [c for c in self.failed_checks if c.required]

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def families(self) -> list[str]:
        return list(dict.fromkeys(c.family for c in self.checks))

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            "policy": self.policy_name,
            "failed_required": [c.name for c in self.failed_required],
            "checks": [c.to_dict() for c in self.checks],
            "flagged_synthetic_ids": list(self.flagged_synthetic_ids),
            "summary": _jsonable(self.summary),
            "meta": _jsonable(self.meta),
            "tables": {k: _frame_records(v) for k, v in self.tables.items()},
        }


def _json_float(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else round(x, 6)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return _json_float(obj)
    return obj


def _frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [_jsonable(row) for row in frame.to_dict(orient="records")]
