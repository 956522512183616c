"""Regular-grid view of a cohort: the tensor form the generator learns and the audits measure.

Observations are binned onto the schema's grid (step ``step_hours`` up to ``horizon_hours``);
within a bin the **last** value is kept (what a clinician charting hourly would read off).
Observations at exactly the horizon fall into the last bin; later ones are outside the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clinsynth.cohort import Cohort


@dataclass
class GridCohort:
    """``values[n, t, v]``: NaN where variable v was not measured in step t of patient n."""

    patient_ids: np.ndarray
    variables: list[str]
    values: np.ndarray
    static_names: list[str]
    statics: np.ndarray
    step_hours: float

    @property
    def mask(self) -> np.ndarray:
        return ~np.isnan(self.values)

    @property
    def n_patients(self) -> int:
        return self.values.shape[0]

    @property
    def n_steps(self) -> int:
        return self.values.shape[1]

    def static(self, name: str) -> np.ndarray:
        return self.statics[:, self.static_names.index(name)]

    def variable(self, name: str) -> np.ndarray:
        return self.values[:, :, self.variables.index(name)]


def to_grid(cohort: Cohort) -> GridCohort:
    """Bin a cohort's observations onto its schema's grid (last value per bin)."""
    schema = cohort.schema
    step, n_steps = schema.grid.step_hours, schema.grid.n_steps
    ids = np.array(cohort.patient_ids, dtype=object)
    variables = schema.variable_names
    values = np.full((len(ids), n_steps, len(variables)), np.nan, dtype=np.float32)

    obs = cohort.observations
    if len(obs):
        t = np.floor(obs["hours"].to_numpy() / step).astype(int)
        t = np.where(np.isclose(obs["hours"].to_numpy(), schema.grid.horizon_hours), n_steps - 1, t)
        keep = (t >= 0) & (t < n_steps)
        pos = pd.Index(ids).get_indexer(obs["patient_id"].to_numpy())
        var = pd.Index(variables).get_indexer(obs["variable"].to_numpy())
        keep &= (pos >= 0) & (var >= 0)
        # observations are sorted by time, so assigning in order keeps the last value per bin
        order = np.argsort(obs["hours"].to_numpy()[keep], kind="stable")
        values[pos[keep][order], t[keep][order], var[keep][order]] = obs["value"].to_numpy()[keep][
            order
        ]

    static_names = [*schema.static_names, *schema.outcome_names]
    statics = cohort.statics.reindex(columns=static_names).to_numpy(dtype=np.float64)
    return GridCohort(
        patient_ids=ids,
        variables=variables,
        values=values,
        static_names=static_names,
        statics=statics,
        step_hours=step,
    )
