"""Audit policies: which thresholds a synthetic cohort must meet before it may leave the building.

A policy is a YAML file (``audits/policies/default.yaml``, ``strict.yaml``, or any path) validated
by the pydantic models below. Each check has a threshold, a direction (``max``: the value must not
exceed it; ``min``: must not fall below it) and a ``required`` flag; only required checks decide the
verdict. Thresholds are *tolerances*: the audit never judges more strictly than sampling noise at
the cohort's size allows (see ``Measurement.noise``), so a real held-out cohort passes by design.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from audits.result import Check, Direction, Measurement
from clinsynth.errors import ClinsynthError, describe_validation_error

POLICY_DIR = Path(__file__).resolve().parent / "policies"


@dataclass(frozen=True)
class CheckSpec:
    family: str
    direction: Direction
    description: str


# Every check the suite can produce. Descriptions are what a reader of audit.html sees.
CHECKS: dict[str, CheckSpec] = {
    "membership_dcr_auroc": CheckSpec(
        "membership",
        "max",
        "Distance attack: can closeness to a synthetic record tell training patients from "
        "held-out ones? AUROC 0.5 = no better than a coin.",
    ),
    "membership_dcr_tpr_at_fpr01": CheckSpec(
        "membership",
        "max",
        "Distance attack: share of training patients exposed when only 1% of outsiders are "
        "wrongly accused (TPR at FPR 1%; 0.01 = chance).",
    ),
    "membership_dcr_tpr_at_fpr10": CheckSpec(
        "membership",
        "max",
        "Distance attack: TPR at FPR 10% (0.10 = chance).",
    ),
    "membership_domias_auroc": CheckSpec(
        "membership",
        "max",
        "Density attack (DOMIAS): is the synthetic data denser than the population around "
        "training patients? AUROC 0.5 = no.",
    ),
    "membership_domias_tpr_at_fpr01": CheckSpec(
        "membership", "max", "Density attack: TPR at FPR 1% (0.01 = chance)."
    ),
    "membership_domias_tpr_at_fpr10": CheckSpec(
        "membership", "max", "Density attack: TPR at FPR 10% (0.10 = chance)."
    ),
    "membership_vulnerable_auroc": CheckSpec(
        "membership",
        "max",
        "Best attack AUROC on the most outlying real patients (rare presentations), who are "
        "the easiest to single out.",
    ),
    "memorisation_dcr_median_ratio": CheckSpec(
        "memorisation",
        "min",
        "Median distance of synthetic records to their closest training patient, relative to "
        "the same for new real patients (1 = as far as a new patient; 0 = copies).",
    ),
    "memorisation_dcr_p05_ratio": CheckSpec(
        "memorisation",
        "min",
        "As above for the closest 5%: catches a minority of near-copies the median hides.",
    ),
    "memorisation_nndr_ratio": CheckSpec(
        "memorisation",
        "min",
        "Nearest/second-nearest distance ratio of synthetic records relative to new real "
        "patients: a record that sits on one training patient has a ratio near 0.",
    ),
    "memorisation_exact_copy_rate": CheckSpec(
        "memorisation",
        "max",
        "Share of synthetic stays identical to a training stay (all statics and values).",
    ),
    "memorisation_near_copy_rate": CheckSpec(
        "memorisation",
        "max",
        "Share of synthetic stays closer to a training patient than 99% of new real patients "
        "are (they are flagged and dropped at export).",
    ),
    "memorisation_trajectory_copy_excess": CheckSpec(
        "memorisation",
        "max",
        "Share of synthetic one-variable trajectories (3+ points) that copy a training "
        "patient's trajectory, above the rate at which new real patients coincide by chance.",
    ),
    "marginal_overall": CheckSpec(
        "fidelity",
        "max",
        "Share of variables (and statics) whose overall distribution, time ignored, differs "
        "from the training cohort's.",
    ),
    "temporal_marginal_over_time": CheckSpec(
        "temporal",
        "max",
        "Share of variables whose distribution within time windows of the stay differs.",
    ),
    "temporal_covariance": CheckSpec(
        "temporal",
        "max",
        "Share of variables whose within-patient autocorrelation (lags 1, 2, 4, 8) or "
        "cross-correlation with other variables (lag 0 and 1) is broken.",
    ),
    "temporal_individual": CheckSpec(
        "temporal",
        "max",
        "Share of variables whose per-patient variability, trend or trajectory roughness differs.",
    ),
    "temporal_measurement": CheckSpec(
        "temporal",
        "max",
        "Share of variables whose measurement pattern differs (how often, at which intervals, "
        "measured together with what).",
    ),
    "plausibility_hard_limit_rate": CheckSpec(
        "plausibility",
        "max",
        "Share of values outside the schema's hard (physiologically impossible) limits.",
    ),
    "plausibility_rate_of_change_rate": CheckSpec(
        "plausibility",
        "max",
        "Share of consecutive measurements changing faster than the schema's max rate per hour.",
    ),
    "plausibility_rule_rate": CheckSpec(
        "plausibility",
        "max",
        "Share of co-measured time steps breaking a cross-variable rule (e.g. diastolic below "
        "systolic).",
    ),
    "plausibility_impossible_rate": CheckSpec(
        "plausibility",
        "max",
        "Share of values that are impossible (measured outside the stay window, two values at "
        "one time, a code that does not exist, a fractional integer).",
    ),
    "plausibility_patients_flagged": CheckSpec(
        "plausibility",
        "max",
        "Share of patients with at least one plausibility issue of any kind.",
    ),
    "utility_tstr_gap": CheckSpec(
        "utility",
        "max",
        "Outcome prediction: AUROC lost when a model is trained on synthetic instead of real "
        "training data, both tested on held-out real patients (worst outcome).",
    ),
    "utility_discriminator_auroc": CheckSpec(
        "utility",
        "max",
        "How well a classifier tells synthetic from real stays (cross-validated AUROC; 0.5 = "
        "indistinguishable).",
    ),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckPolicy(_Strict):
    threshold: float
    direction: Literal["max", "min"]
    required: bool = True


class Parameters(_Strict):
    """Knobs of the measurements themselves (not pass/fail thresholds of whole checks)."""

    noise_alpha: float = Field(
        0.001, gt=0, lt=0.5, description="two-sided level of the sampling-noise allowance"
    )
    near_copy_quantile: float = Field(
        0.01, gt=0, lt=0.5, description="near copy: DCR below this quantile of holdout DCRs"
    )
    trajectory_tolerance: float = Field(
        0.02, ge=0, description="near-identical trajectory: max |diff| <= this x normal width"
    )
    min_trajectory_points: int = Field(3, ge=2)
    vulnerable_fraction: float = Field(0.05, gt=0, le=0.5)
    min_vulnerable: int = Field(20, ge=4)
    min_patients: int = Field(20, ge=5, description="per-variable metric needs this many")
    # per-variable effect-size tolerances (a variable fails when its metric exceeds both the
    # tolerance and the sampling-noise allowance)
    marginal_ks: float = Field(0.15, gt=0)
    time_window_ks: float = Field(0.2, gt=0)
    autocorrelation: float = Field(0.2, gt=0)
    cross_correlation: float = Field(0.2, gt=0)
    individual_ks: float = Field(0.25, gt=0)
    observation_rate_pp: float = Field(5.0, gt=0)
    interval_ks: float = Field(0.25, gt=0)
    co_measurement: float = Field(0.15, gt=0)


class Policy(_Strict):
    name: str
    description: str = ""
    parameters: Parameters = Parameters()
    checks: dict[str, CheckPolicy]

    @model_validator(mode="after")
    def _known(self) -> Policy:
        unknown = sorted(set(self.checks) - set(CHECKS))
        if unknown:
            raise ValueError(f"unknown checks {unknown}; known: {sorted(CHECKS)}")
        for name, check in self.checks.items():
            if check.direction != CHECKS[name].direction:
                raise ValueError(
                    f"{name}: direction must be '{CHECKS[name].direction}' (it is "
                    f"'{check.direction}')"
                )
        return self

    def judge(self, measurement: Measurement) -> Check:
        """Turn a measurement into a check; unknown to the policy = reported, not required."""
        spec = CHECKS[measurement.name]
        rule = self.checks.get(measurement.name)
        value = float(measurement.value)
        if rule is None:
            return Check(
                measurement.name,
                spec.family,
                value,
                None,
                spec.direction,
                None,
                False,
                measurement.details,
                spec.description,
            )
        threshold = float(rule.threshold)
        if measurement.noise is not None:
            pick = max if spec.direction == "max" else min
            threshold = float(pick(threshold, measurement.noise))
        passed: bool | None
        if not measurement.applicable or value != value:  # NaN: could not be measured
            passed = None
        elif spec.direction == "max":
            passed = bool(value <= threshold)
        else:
            passed = bool(value >= threshold)
        return Check(
            name=measurement.name,
            family=spec.family,
            value=value,
            threshold=threshold,
            direction=spec.direction,
            passed=passed,
            required=rule.required,
            details=measurement.details,
            description=spec.description,
            policy_threshold=rule.threshold,
        )


def available_policies() -> list[str]:
    return sorted(p.stem for p in POLICY_DIR.glob("*.yaml"))


def load_policy(policy: str | Path | Policy | None = None) -> Policy:
    """A shipped policy by name (``default``, ``strict``) or a YAML file path."""
    if isinstance(policy, Policy):
        return policy
    name = policy or "default"
    path = Path(name)
    if not (path.suffix in (".yaml", ".yml") or path.exists()):
        path = POLICY_DIR / f"{name}.yaml"
        if not path.is_file():
            raise ClinsynthError(
                f"Unknown audit policy '{name}'. Shipped policies: "
                f"{', '.join(available_policies())}; or give the path of a policy .yaml file."
            )
    if not path.is_file():
        raise ClinsynthError(f"Audit policy file {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ClinsynthError(f"Audit policy {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ClinsynthError(f"Audit policy {path} must be a YAML mapping at the top level.")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        raise ClinsynthError(f"Audit policy {path} is not valid: {problems}") from None
