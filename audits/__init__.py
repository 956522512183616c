"""Audits of a synthetic cohort against real members and held-out non-members.

Importable on their own: they depend on clinsynth's data model (schema, cohort, grid), never on the
generator, so they can audit any synthetic cohort in a schema's layout.

``run_audits(train, holdout, synthetic)`` runs every family (membership inference, memorisation,
marginal fidelity, temporal structure, plausibility, utility), judges each measurement against a
policy (``audits/policies/default.yaml`` unless told otherwise) and returns an ``AuditResult``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from threadpoolctl import threadpool_limits

from audits.features import stay_features
from audits.fidelity import marginal_audit
from audits.membership import membership_audit
from audits.memorisation import memorisation_audit
from audits.plausibility import patient_flags, plausibility_audit
from audits.policy import Policy, load_policy
from audits.result import AuditResult, Check, FamilyOutput
from audits.temporal import temporal_audit
from audits.utility import utility_audit
from clinsynth.cohort import CleaningReport, Cohort
from clinsynth.errors import ClinsynthError
from clinsynth.grid import to_grid
from clinsynth.schema import Schema, VariableType

__all__ = ["FAMILIES", "AuditResult", "Check", "patient_flags", "run_audits"]

FAMILIES = ("membership", "memorisation", "fidelity", "temporal", "plausibility", "utility")
MIN_PATIENTS = 20

Progress = Callable[[str, int, int], None]


def _content(schema: Schema) -> dict:
    """What must agree between the cohorts (the file layout may differ)."""
    keep = ("grid", "statics", "outcomes", "variables")
    return schema.model_dump(mode="json", include=set(keep))


def _check_inputs(cohorts: dict[str, Cohort | None]) -> Schema:
    present = {k: c for k, c in cohorts.items() if c is not None}
    schema = present["training"].schema
    for name, cohort in present.items():
        if _content(cohort.schema) != _content(schema):
            raise ClinsynthError(
                f"The {name} cohort uses schema '{cohort.schema.name}', whose variables, statics, "
                f"outcomes or grid differ from the training cohort's schema '{schema.name}'. "
                "Audits compare like with like: load every cohort with the same schema."
            )
        if cohort.n_patients < MIN_PATIENTS:
            raise ClinsynthError(
                f"The {name} cohort has {cohort.n_patients} patients; the audits need at least "
                f"{MIN_PATIENTS} in each of training, held-out and synthetic to say anything."
            )
    return schema


def run_audits(
    train: Cohort,
    holdout: Cohort,
    synthetic: Cohort,
    policy: str | Path | Policy | None = None,
    reference: Cohort | None = None,
    *,
    seed: int = 0,
    progress: Progress | None = None,
    loader_report: CleaningReport | None = None,
) -> AuditResult:
    """Audit ``synthetic`` against training members ``train`` and held-out non-members ``holdout``.

    ``reference``: a population sample for the density attack (else half the holdout is used).
    ``loader_report``: the synthetic file's cleaning report, when it was just read from disk, so
    values the loader had to drop still count as implausible. Same inputs + seed = same result.
    """
    # One BLAS/OpenMP thread: on a shared 2-core machine multi-threaded kernels spin against
    # other processes and run up to 10x slower; single-threaded they are also bit-reproducible.
    with threadpool_limits(limits=1):
        return _run(train, holdout, synthetic, policy, reference, seed, progress, loader_report)


def _run(
    train: Cohort,
    holdout: Cohort,
    synthetic: Cohort,
    policy: str | Path | Policy | None,
    reference: Cohort | None,
    seed: int,
    progress: Progress | None,
    loader_report: CleaningReport | None,
) -> AuditResult:
    pol = load_policy(policy)
    schema = _check_inputs(
        {"training": train, "held-out": holdout, "synthetic": synthetic, "reference": reference}
    )
    params = pol.parameters
    timings: dict[str, float] = {}
    outputs: dict[str, FamilyOutput] = {}
    steps = ("representation", *FAMILIES)

    def step(i: int, name: str) -> float:
        if progress is not None:
            progress(name, i, len(steps))
        return time.perf_counter()

    t0 = step(0, "representation")
    grids = {
        k: to_grid(c) for k, c in (("train", train), ("holdout", holdout), ("synth", synthetic))
    }
    feats = {k: stay_features(g, schema) for k, g in grids.items()}
    filled = {k: f.filled() for k, f in feats.items()}
    ref_x = stay_features(to_grid(reference), schema).filled() if reference is not None else None
    timings["representation"] = time.perf_counter() - t0

    t0 = step(1, "membership")
    outputs["membership"] = membership_audit(
        filled["train"], filled["holdout"], filled["synth"], params, seed=seed, reference=ref_x
    )
    timings["membership"] = time.perf_counter() - t0

    t0 = step(2, "memorisation")
    outputs["memorisation"] = memorisation_audit(
        filled["train"],
        filled["holdout"],
        filled["synth"],
        grids["train"],
        grids["synth"],
        feats["train"].z,
        feats["holdout"].z,
        feats["synth"].z,
        schema,
        params,
    )
    timings["memorisation"] = time.perf_counter() - t0

    t0 = step(3, "fidelity")
    outputs["fidelity"] = marginal_audit(
        grids["train"], grids["synth"], feats["train"].z, feats["synth"].z, schema, params
    )
    timings["fidelity"] = time.perf_counter() - t0

    t0 = step(4, "temporal")
    outputs["temporal"] = temporal_audit(
        feats["train"].z,
        feats["synth"].z,
        feats["train"].summaries,
        feats["synth"].summaries,
        grids["train"].variables,
        schema.grid.step_hours,
        params,
        seed=seed,
    )
    timings["temporal"] = time.perf_counter() - t0

    t0 = step(5, "plausibility")
    outputs["plausibility"] = plausibility_audit(
        synthetic, grids["synth"], train, grids["train"], params, loader_report
    )
    timings["plausibility"] = time.perf_counter() - t0

    t0 = step(6, "utility")
    binary = [o.name for o in schema.outcomes if o.type is VariableType.binary]
    outcomes = schema.outcome_names
    outputs["utility"] = utility_audit(
        feats["train"].without(outcomes),
        train.statics.reindex(columns=outcomes),
        feats["holdout"].without(outcomes),
        holdout.statics.reindex(columns=outcomes),
        feats["synth"].without(outcomes),
        synthetic.statics.reindex(columns=outcomes),
        binary,
        params,
        seed=seed,
    )
    timings["utility"] = time.perf_counter() - t0
    if progress is not None:
        progress("done", len(steps), len(steps))

    checks = [pol.judge(m) for out in outputs.values() for m in out.measurements]
    flagged = sorted({i for out in outputs.values() for i in out.flagged_synthetic_ids})
    tables = {k: v for out in outputs.values() for k, v in out.tables.items()}
    plots = {family: out.plots for family, out in outputs.items()}
    meta = {
        "schema": schema.name,
        "schema_fingerprint": schema.fingerprint(),
        "n_patients": {
            "training": train.n_patients,
            "holdout": holdout.n_patients,
            "synthetic": synthetic.n_patients,
            "reference": reference.n_patients if reference is not None else None,
        },
        "seed": seed,
        "parameters": params.model_dump(),
    }
    summary = {family: out.summary for family, out in outputs.items() if out.summary}
    return AuditResult(
        checks=checks,
        flagged_synthetic_ids=flagged,
        tables=tables,
        policy_name=pol.name,
        meta=meta,
        summary=summary,
        plots=plots,
        timings={k: round(v, 2) for k, v in timings.items()},
    )
