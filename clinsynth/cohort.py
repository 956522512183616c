"""The in-memory cohort every part of clinsynth shares: statics table + long observations.

Conventions (the data model the audits depend on):

- ``statics``: one row per patient, index ``patient_id`` (str), one column per static attribute and
  outcome of the schema, NaN where missing. Binary fields are 0/1; categorical fields hold the
  *index* of the value in the schema's ``categories`` list (0..K-1), so any category list works.
- ``observations``: columns ``patient_id`` (str), ``hours`` (float, hours since the stay's start,
  never an absolute date), ``variable`` (str, a schema variable), ``value`` (float, same coding
  as statics). Sorted by patient, hours, variable; no missing values (unmeasured = no row).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from clinsynth.schema import Schema

OBS_COLUMNS = ["patient_id", "hours", "variable", "value"]


@dataclass
class CleaningReport:
    """What the loader changed or dropped, counted per rule and per variable.

    ``counts[(rule, variable)] = n``; ``variable`` is ``"*"`` for rules about whole rows/patients.
    ``notes`` keeps one-line human explanations (e.g. subsampling) for the CLI and manifest.
    """

    counts: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def add(self, rule: str, variable: str = "*", n: int = 1) -> None:
        if n:
            self.counts[(rule, variable)] += int(n)

    def total(self, rule: str) -> int:
        return sum(n for (r, _), n in self.counts.items() if r == rule)

    def to_frame(self) -> pd.DataFrame:
        rows = [{"rule": r, "variable": v, "count": n} for (r, v), n in self.counts.items()]
        frame = pd.DataFrame(rows, columns=["rule", "variable", "count"])
        return frame.sort_values(["rule", "variable"]).reset_index(drop=True)

    def to_dict(self) -> dict:
        by_rule: dict[str, dict[str, int]] = {}
        for (r, v), n in sorted(self.counts.items()):
            by_rule.setdefault(r, {})[v] = n
        return {"counts": by_rule, "notes": list(self.notes)}


@dataclass
class Cohort:
    """A validated cohort: the unit the generator fits on and the audits compare."""

    schema: Schema
    statics: pd.DataFrame
    observations: pd.DataFrame
    report: CleaningReport = field(default_factory=CleaningReport)
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.statics.index = self.statics.index.astype(str)
        self.statics.index.name = "patient_id"
        missing = [c for c in OBS_COLUMNS if c not in self.observations.columns]
        if missing:
            raise ValueError(f"observations lack columns {missing}")
        self.observations = self.observations[OBS_COLUMNS].reset_index(drop=True)
        self.observations["patient_id"] = self.observations["patient_id"].astype(str)

    @property
    def patient_ids(self) -> list[str]:
        return list(self.statics.index)

    @property
    def n_patients(self) -> int:
        return len(self.statics)

    def subset(self, patient_ids: list[str] | np.ndarray | pd.Index) -> Cohort:
        """A cohort with only these patients (order kept as given)."""
        ids = pd.Index([str(p) for p in patient_ids])
        obs = self.observations[self.observations["patient_id"].isin(ids)]
        return Cohort(
            schema=self.schema,
            statics=self.statics.loc[ids].copy(),
            observations=obs.copy(),
            report=self.report,
            provenance=dict(self.provenance),
        )

    def split(self, fraction: float, seed: int) -> tuple[Cohort, Cohort]:
        """Seeded split into (kept, held_out) with ``fraction`` of patients held out."""
        if not 0.0 <= fraction < 1.0:
            raise ValueError("holdout fraction must be in [0, 1)")
        rng = np.random.default_rng(seed)
        ids = np.array(sorted(self.patient_ids))
        order = rng.permutation(len(ids))
        n_out = round(fraction * len(ids))
        held = ids[order[:n_out]]
        kept = ids[np.sort(order[n_out:])]
        return self.subset(kept), self.subset(np.sort(held))

    def content_hash(self) -> str:
        """SHA-256 of the cohort's values (order-independent of file layout)."""
        h = hashlib.sha256()
        h.update(pd.util.hash_pandas_object(self.statics.sort_index(), index=True).values.tobytes())
        obs = self.observations.sort_values(OBS_COLUMNS[:3])
        h.update(pd.util.hash_pandas_object(obs, index=False).values.tobytes())
        return h.hexdigest()


def empty_observations() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": pd.Series(dtype=str),
            "hours": pd.Series(dtype=float),
            "variable": pd.Series(dtype=str),
            "value": pd.Series(dtype=float),
        }
    )
