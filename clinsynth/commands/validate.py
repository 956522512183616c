"""``clinsynth validate``: load a cohort exactly as `generate` would, show what was found and
cleaned, and write nothing — the analyst's first check of a file against a schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from clinsynth.cohort import CleaningReport, Cohort
from clinsynth.errors import CohortRefused


def _summary_table(cohort: Cohort) -> Table:
    obs = cohort.observations
    n_patients = cohort.provenance.get("n_patients", {})
    last = obs.groupby("patient_id")["hours"].max()
    table = Table(title="Cohort", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("patients in file", f"{n_patients.get('in_file', cohort.n_patients):,}")
    table.add_row("patients after cleaning", f"{n_patients.get('after_cleaning', 0):,}")
    table.add_row("patients loaded", f"{cohort.n_patients:,}")
    table.add_row("observations", f"{len(obs):,}")
    table.add_row(
        "variables measured", f"{obs['variable'].nunique()} of {len(cohort.schema.variables)}"
    )
    table.add_row("time span (hours)", f"{obs['hours'].min():g} – {obs['hours'].max():g}")
    table.add_row("last observation per patient, median (h)", f"{last.median():.1f}")
    for name in cohort.schema.outcome_names:
        values = cohort.statics[name]
        rate = f"{values.mean():.1%}" if values.notna().any() else "n/a"
        table.add_row(f"{name} rate", f"{rate} (missing for {int(values.isna().sum()):,})")
    return table


def _variables_table(cohort: Cohort) -> Table:
    from clinsynth.grid import to_grid

    schema, obs = cohort.schema, cohort.observations
    grid = to_grid(cohort)
    n, horizon = max(cohort.n_patients, 1), schema.grid.horizon_hours
    within = obs[obs["hours"] <= horizon]
    counts = within.groupby("variable").size()
    patients = obs.groupby("variable")["patient_id"].nunique()
    title = (
        f"Variables (rate: observations per patient-hour over the {horizon:g} h horizon; "
        f"missing: share of {schema.grid.step_hours:g} h grid cells without a value)"
    )
    table = Table(title=title)
    for column in ("variable", "observations", "patients measured", "rate / patient-h", "missing"):
        table.add_column(column, justify="left" if column == "variable" else "right")
    for index, name in enumerate(schema.variable_names):
        measured = int(patients.get(name, 0))
        missing = 1.0 - float(np.mean(grid.mask[:, :, index])) if grid.n_steps else 1.0
        table.add_row(
            name,
            f"{int((obs['variable'] == name).sum()):,}",
            f"{measured:,} ({measured / n:.0%})",
            f"{counts.get(name, 0) / (n * horizon):.3f}",
            f"{missing:.1%}",
        )
    for field in schema.statics:
        missing = float(cohort.statics[field.name].isna().mean()) if cohort.n_patients else 1.0
        table.add_row(f"{field.name} (static)", "", "", "", f"{missing:.1%}")
    return table


def _cleaning_table(report: CleaningReport) -> Table:
    table = Table(title="Cleaning report (what the loader changed or dropped)")
    table.add_column("rule")
    table.add_column("variable")
    table.add_column("count", justify="right")
    for row in report.to_frame().itertuples(index=False):
        table.add_row(row.rule, row.variable, f"{row.count:,}")
    if not len(report.counts):
        table.add_row("(nothing to clean)", "", "")
    return table


def _print_report(console: Console, report: CleaningReport) -> None:
    console.print(_cleaning_table(report))
    for note in report.notes:
        console.print(f"[yellow]•[/yellow] {note}")


def validate(
    data: Annotated[
        Path, typer.Argument(help="Cohort file (CSV or CSV.gz) in the schema's layout.")
    ],
    schema: Annotated[str, typer.Option("--schema", help="Schema name or path to a .yaml file.")],
    outcomes: Annotated[
        Path | None, typer.Option("--outcomes", help="Outcomes file (schemas with outcomes_file).")
    ] = None,
    subsample: Annotated[
        int | None,
        typer.Option(
            "--subsample", help="Use a seeded random subsample of N patients (500..2000)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the subsample.")] = 0,
) -> None:
    """Load DATA with a schema; show the cohort, its variables and the cleaning. Writes nothing."""
    from clinsynth.loader import load_cohort

    console = Console()
    try:
        cohort = load_cohort(
            data, schema, outcomes_path=outcomes, subsample=subsample, seed=seed, progress=True
        )
    except CohortRefused as exc:
        report = getattr(exc, "report", None)
        if report is not None:
            _print_report(console, report)
        raise
    console.print(_summary_table(cohort))
    console.print(_variables_table(cohort))
    _print_report(console, cohort.report)
    console.print(
        f"[green]OK:[/green] {cohort.n_patients:,} patients are ready for `clinsynth generate`."
    )


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
