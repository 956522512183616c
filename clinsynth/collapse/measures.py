"""Per-generation measures of drift, each comparing a synthetic cohort with real held-out stays.

- **tail coverage** (per continuous/integer variable): the real held-out values beyond the
  ``tail/2`` and ``1 - tail/2`` quantiles are the rare presentations; a side is covered to the
  extent the synthetic cohort puts as much mass beyond the same cut-offs,
  ``min(1, synthetic share / real share)``; the variable's coverage is the mean of both sides.
  1 = the tails are as populated as in real data; collapse drives it towards 0.
- **variance ratio** (per variable): variance of the synthetic values over that of the real
  values, both in the schema's public-range units (``audits.features.scaled_grid``); < 1 means
  the distribution is narrowing.
- **temporal dependency errors**: from ``audits.temporal.temporal_audit`` — mean autocorrelation
  |difference| (lags 1, 2, 4, 8), mean cross-correlation |difference|, and the share of judged
  (variable, metric) pairs that fail the default policy.
- **TSTR**: AUROC of a classifier trained on the synthetic cohort and tested on the real
  held-out stays (``audits.utility.tstr_table``; mean over binary outcomes), next to TRTR,
  and the synthetic rate of the binary outcomes (a rare outcome is a rare presentation too).

The real side (held-out grid, features, cut-offs) is computed once in :class:`RealReference`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from audits.features import StayFeatures, stay_features
from audits.policy import Parameters, load_policy
from audits.temporal import temporal_audit
from audits.utility import tstr_table
from clinsynth.cohort import Cohort
from clinsynth.grid import to_grid
from clinsynth.schema import Schema, VariableType

MIN_VALUES = 20  # fewer real values than this: the variable's tails are not measured


def tail_coverage(real: np.ndarray, synthetic: np.ndarray, tail: float) -> float:
    """Coverage of the real tails (see module docstring); NaN when the real side is too thin."""
    real = real[~np.isnan(real)]
    synthetic = synthetic[~np.isnan(synthetic)]
    if len(real) < MIN_VALUES:
        return math.nan
    if len(synthetic) == 0:
        return 0.0
    lo, hi = np.quantile(real, [tail / 2, 1 - tail / 2])
    sides = []
    for real_share, synth_share in (
        (np.mean(real <= lo), np.mean(synthetic <= lo)),
        (np.mean(real >= hi), np.mean(synthetic >= hi)),
    ):
        sides.append(min(1.0, synth_share / real_share) if real_share > 0 else math.nan)
    return float(np.nanmean(sides))


def variance_ratio(real: np.ndarray, synthetic: np.ndarray) -> float:
    real = real[~np.isnan(real)]
    synthetic = synthetic[~np.isnan(synthetic)]
    if len(real) < MIN_VALUES or len(synthetic) < 2:
        return math.nan
    real_var = float(np.var(real))
    return float(np.var(synthetic)) / real_var if real_var > 0 else math.nan


@dataclass
class RealReference:
    """The real cohorts every generation is judged against, prepared once."""

    schema: Schema
    holdout: Cohort
    holdout_features: StayFeatures
    train_features: StayFeatures  # real training stays, for the TRTR reference
    train: Cohort
    params: Parameters
    tail: float

    @classmethod
    def build(cls, holdout: Cohort, train: Cohort, tail: float) -> RealReference:
        schema = holdout.schema
        return cls(
            schema=schema,
            holdout=holdout,
            holdout_features=stay_features(to_grid(holdout), schema),
            train_features=stay_features(to_grid(train), schema),
            train=train,
            params=load_policy(None).parameters,
            tail=tail,
        )

    @property
    def continuous(self) -> list[str]:
        kinds = (VariableType.continuous, VariableType.integer)
        return [v.name for v in self.schema.variables if v.type in kinds]


def per_variable(ref: RealReference, synth: StayFeatures) -> pd.DataFrame:
    """Tail coverage and variance ratio of every continuous/integer variable."""
    rows = []
    variables = ref.schema.variable_names
    for name in ref.continuous:
        j = variables.index(name)
        real, fake = ref.holdout_features.z[:, :, j].ravel(), synth.z[:, :, j].ravel()
        rows.append(
            {
                "variable": name,
                "tail_coverage": tail_coverage(real, fake, ref.tail),
                "variance_ratio": variance_ratio(real, fake),
            }
        )
    return pd.DataFrame(rows, columns=["variable", "tail_coverage", "variance_ratio"])


def temporal_errors(ref: RealReference, synth: StayFeatures, seed: int) -> dict[str, float]:
    out = temporal_audit(
        ref.holdout_features.z, synth.z, ref.holdout_features.summaries, synth.summaries,
        ref.schema.variable_names, ref.schema.grid.step_hours, ref.params, seed=seed,
    )  # fmt: skip
    table = out.tables["temporal"]
    metric = table["metric"].astype(str)
    judged = table["passed"].dropna()
    return {
        "autocorrelation_error": float(
            table.loc[metric.str.startswith("autocorr"), "value"].mean()
        ),
        "cross_correlation_error": float(table.loc[metric.str.startswith("cross"), "value"].mean()),
        "temporal_failing_share": float((~judged.astype(bool)).mean()) if len(judged) else math.nan,
    }


def utility(ref: RealReference, synthetic: Cohort, synth: StayFeatures, seed: int) -> dict:
    outcomes = ref.schema.outcome_names
    binary = [o.name for o in ref.schema.outcomes if o.type is VariableType.binary]
    if not binary:
        return {"tstr_auroc": math.nan, "trtr_auroc": math.nan, "outcome_rate": math.nan}
    table = tstr_table(
        ref.train_features.without(outcomes), ref.train.statics.reindex(columns=outcomes),
        synth.without(outcomes), synthetic.statics.reindex(columns=outcomes),
        ref.holdout_features.without(outcomes), ref.holdout.statics.reindex(columns=outcomes),
        binary, seed,
    )  # fmt: skip
    return {
        "tstr_auroc": float(table["tstr"].mean()),
        "trtr_auroc": float(table["trtr"].mean()),
        "outcome_rate": float(table["synthetic_rate"].mean()),  # a rare outcome fading away
    }


def measure(ref: RealReference, synthetic: Cohort, seed: int) -> tuple[dict, pd.DataFrame]:
    """(summary measures, per-variable table) of one synthetic cohort."""
    # one BLAS/OpenMP thread, as in audits.run_audits: on a shared 2-core machine threaded
    # kernels spin against other processes and run many times slower
    with threadpool_limits(limits=1):
        return _measure(ref, synthetic, seed)


def _measure(ref: RealReference, synthetic: Cohort, seed: int) -> tuple[dict, pd.DataFrame]:
    synth = stay_features(to_grid(synthetic), ref.schema)
    variables = per_variable(ref, synth)
    summary = {
        "tail_coverage": float(variables["tail_coverage"].mean()),
        "variance_ratio": float(variables["variance_ratio"].mean()),
        **temporal_errors(ref, synth, seed),
        **utility(ref, synthetic, synth, seed),
    }
    return summary, variables
