"""DATASHEET.md: the human-readable half of an export's lineage.

Whoever receives the files may never see the run folder or the manifest JSON; the datasheet tells
them in plain words what the data is, how it was made, how private it is, what the audits found,
and what it must not be used for (in the spirit of Gebru et al., "Datasheets for Datasets").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import clinsynth
from clinsynth.provenance import utc_now

if TYPE_CHECKING:
    from clinsynth.export import ExportSummary, VettedRun

INTENDED_USES = [
    "building, testing and demonstrating software that will later run on real ICU data;",
    "teaching, tutorials and method prototyping;",
    "exploratory analysis and feasibility checks, with every finding confirmed on real data "
    "before it is relied on.",
]
PROHIBITED_USES = [
    "trying to identify, re-identify or link any record to a real person, or combining this "
    "data with other sources for that purpose;",
    "any decision about the care of an individual patient;",
    "publishing clinical or scientific conclusions drawn from this data alone, or presenting it "
    "as real patient data;",
    "training or validating a model for clinical deployment without validation on real data.",
]


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _seeds(seeds: Any) -> str:
    if isinstance(seeds, dict):
        return ", ".join(f"{k} {v}" for k, v in seeds.items()) or "—"
    return _fmt(seeds)


def _how_made(privacy: dict[str, Any], n_real: int | None) -> list[str]:
    """The generation paragraph; a run without DP says so first, in bold."""
    from clinsynth.export import is_differentially_private

    stays = f"{n_real if n_real is not None else 'the training part of'} real stays"
    if not is_differentially_private(privacy):
        return [
            f"**NOT differentially private.** A generator was trained on {stays} without a "
            "formal privacy guarantee (an explicitly accepted no-DP run or the SDV PAR baseline);"
            " only the audits below vouch for it. The rest of the real cohort was held out to "
            "audit the result."
        ]
    return [
        "A sequence model was trained with differentially private stochastic gradient descent "
        f"(DP-SGD, opacus) on {stays}; the rest of the real cohort was held out to audit the "
        "result. Everything the model learned from real data was paid for from the privacy "
        "budget below; scaling, limits and categories come from the public schema. The cohort "
        "was then sampled from the model."
    ]


def _privacy_lines(privacy: dict[str, Any]) -> list[str]:
    labels = [
        ("epsilon", "ε (privacy loss) spent"),
        ("target_epsilon", "ε target"),
        ("delta", "δ"),
        ("accountant", "accountant"),
        ("noise_multiplier", "noise multiplier"),
        ("max_grad_norm", "per-example gradient clipping norm"),
        ("sample_rate", "sampling rate (Poisson)"),
        ("epochs", "epochs"),
        ("steps", "optimiser steps"),
    ]
    return [f"- {label}: {_fmt(privacy[key])}" for key, label in labels if key in privacy]


def _audit_table(checks: list[dict[str, Any]]) -> list[str]:
    if not checks:
        return ["(the audit recorded no individual checks)"]
    lines = [
        "| check | family | value | threshold | result | required |",
        "|---|---|---|---|---|---|",
    ]
    for c in checks:
        direction = {"max": "≤", "min": "≥", "below": "<", "above": ">"}.get(
            str(c.get("direction")), ""
        )
        result = {True: "pass", False: "FAIL"}.get(c.get("passed"), "n/a")
        lines.append(
            f"| {c.get('name', '?')} | {c.get('family', '')} | {_fmt(c.get('value'))} | "
            f"{direction} {_fmt(c.get('threshold'))} | {result} | {_fmt(c.get('required'))} |"
        )
    return lines


def _rule_lines(kept: dict[str, Any] | None) -> list[str]:
    """How often sampling had to keep a schema rule: readers must know that these rules hold
    by construction, and how far the model alone was from them."""
    if not kept or not kept.get("variables"):
        return []
    shares = ", ".join(
        f"{name} {t['redrawn_share']:.1%} of {t['cells_bounded']:,}"
        for name, t in kept["variables"].items()
    )
    lines = [
        "The schema's cross-variable rules (e.g. diastolic below systolic pressure) were kept "
        "while sampling: a value the model drew outside a rule, given the values measured with "
        f"it, was drawn again from the model within the rule ({shares} bounded values). These "
        "rules therefore hold in this data by construction.",
    ]
    if kept.get("not_enforced"):
        lines.append(f"Not kept that way: {'; '.join(kept['not_enforced'])}.")
    return ["", *lines]


def render_datasheet(vetted: VettedRun, summary: ExportSummary) -> str:
    """The DATASHEET.md text for one export."""
    run = vetted.manifest
    schema = vetted.schema
    privacy = run.get("privacy") or {}
    inp = run.get("input") or {}
    n_real = (inp.get("n_patients") or {}).get("train")
    checks = vetted.audit.get("checks", [])
    policy = vetted.audit_section.get("policy", vetted.audit.get("policy", "default"))
    layout = schema.layout
    files = "`cohort.csv`" + (" and `outcomes.csv`" if layout.outcomes_file else "")
    lines = [
        f"# Datasheet: synthetic ICU cohort ({schema.name})",
        "",
        f"Made by clinsynth {clinsynth.__version__} on {utc_now()[:10]} from run "
        f"`{run.get('clinsynth_run', '?')}`. Machine-readable lineage and the SHA-256 of every "
        "file are in `manifest.json` beside this file.",
        "",
        "## What this data is",
        "",
        f"{summary.n_exported} **synthetic** (made-up) ICU stays: no row describes a real person. "
        f"Each stay has static attributes ({', '.join(schema.static_names) or 'none'}), "
        f"outcomes ({', '.join(schema.outcome_names) or 'none'}) and up to "
        f"{schema.grid.horizon_hours:g} hours of {len(schema.variables)} time-varying vitals and "
        f"labs. Files: {files}, in the `{layout.format}` layout of schema `{schema.name}` "
        f"(ID column `{layout.id_column}`, time column `{layout.time_column}`).",
        "",
        "- IDs are fresh and sequential (`SYN00001`, ...) and unrelated to any real ID.",
        "- Times are hours since the start of each synthetic stay. There are no dates.",
        "- Values lie within the schema's hard limits and are rounded to its precision.",
        "",
        "## How it was made",
        "",
        *_how_made(privacy, n_real),
        *_rule_lines(run.get("rules_kept_while_sampling")),
        "",
        *_privacy_lines(privacy),
        f"- random seeds: {_seeds(run.get('seeds'))}",
        "",
        "Differential privacy bounds how much any single real patient can change what the model "
        "learned: the smaller ε, the stronger the guarantee.",
        "",
        "## What the audits found",
        "",
        f"Verdict: **PASSED** under the `{policy}` policy. Every required check must pass before "
        "clinsynth exports anything.",
        "",
        *_audit_table(checks),
        "",
        f"{summary.n_dropped} of {summary.n_synthetic} synthetic records were dropped before "
        "export because the memorisation audit found them too close to a real training patient.",
        "",
        "The audit figures above are aggregate statistics computed on the real cohort; they are "
        "not covered by the privacy budget; each summarises many patients at once.",
        "",
        "## Intended uses",
        "",
        *[f"- {u}" for u in INTENDED_USES],
        "",
        "## Prohibited uses",
        "",
        *[f"- {u}" for u in PROHIBITED_USES],
        "",
        "## Known limitations",
        "",
        "- Privacy noise blurs rare patterns: rare labs, unusual trajectories and small subgroups "
        "are under-represented or distorted.",
        f"- Only the first {schema.grid.horizon_hours:g} hours on a "
        f"{schema.grid.step_hours:g}-hour grid are modelled; finer timing is synthetic.",
        "- Associations not checked by the audits may be weaker than, or absent from, the real "
        "data.",
        "",
        "## Lineage",
        "",
        f"- source run: `{run.get('clinsynth_run', '?')}` (created {run.get('created', '?')})",
        f"- real input (SHA-256): `{(inp.get('data') or {}).get('sha256', '?')}`",
        f"- schema: `{schema.name}` version {schema.version}, fingerprint "
        f"`{schema.fingerprint()[:16]}…`",
        "- audit: `audit.json` in the source run (its hash is in `manifest.json`)",
        "",
    ]
    return "\n".join(lines)
