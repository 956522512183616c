"""``clinsynth import …``: convert public dataset layouts into a layout a schema describes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import_app = typer.Typer(
    help="Convert a public dataset's own layout into one a clinsynth schema reads.",
    no_args_is_help=True,
)


@import_app.command("physionet2012")
def physionet2012(
    source: Annotated[
        Path,
        typer.Argument(
            help="Challenge folder of RecordID.txt files (e.g. set-a/) or the packed "
            "RecordID,Time,Parameter,Value CSV(.gz)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="New folder for cohort.csv.gz + outcomes.csv.")
    ],
    outcomes: Annotated[
        Path | None,
        typer.Option("--outcomes", help="Outcomes file (default: Outcomes*.txt beside the input)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing --out folder.")
    ] = False,
) -> None:
    """PhysioNet/CinC Challenge 2012 → the physionet2012 schema's packed layout."""
    from clinsynth.importers.physionet2012 import import_physionet2012

    console = Console()
    summary = import_physionet2012(source, out, outcomes=outcomes, force=force)
    console.print(
        f"Wrote {summary.files[0]}: {summary.n_records:,} records, {summary.n_rows:,} rows."
    )
    if summary.outcome_sources:
        names = ", ".join(p.name for p in summary.outcome_sources)
        missing = summary.records_without_outcome
        console.print(
            f"Wrote {summary.files[1]}: outcomes of {summary.n_outcomes:,} records from {names}"
            + (f" ({missing:,} records have none)." if missing else ".")
        )
    else:
        console.print(
            "[yellow]No Outcomes*.txt found beside the input: pass --outcomes FILE to include "
            "in-hospital death (the physionet2012 schema needs it).[/yellow]"
        )
    console.print(f"Next: clinsynth validate {summary.files[0]} --schema physionet2012")


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
