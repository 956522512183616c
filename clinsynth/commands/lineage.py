"""``clinsynth lineage FILE``: what is known of a file's origin (which clinsynth runs made which
of its patients, at which generation depth), or "no clinsynth lineage found"."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clinsynth.lineage.detect import ALLOWANCE_FLAG, LineageReport
from clinsynth.lineage.inspect import NOT_FOUND, FileLineage, inspect_file

console = Console()


def _runs_table(report: LineageReport) -> Table:
    table = Table(title="clinsynth runs found in the file")
    for column in ("lineage id", "depth", "patients", "recognised by", "exported", "manifest"):
        justify = "right" if column in ("depth", "patients") else "left"
        table.add_column(column, justify=justify, no_wrap=column == "lineage id")
    for run in report.runs():
        export = run.exports[-1] if run.exports else None
        table.add_row(
            run.lineage_id,
            str(run.depth),
            f"{run.patients:,}",
            run.detected_by,
            (export.created if export else "") or "not in this machine's registry",
            (export.manifest if export else "") or "",
        )
    return table


def print_file_lineage(result: FileLineage) -> None:
    """Shared with tests: the human summary of :func:`inspect_file`."""
    console.print(f"File: {result.path}")
    if result.schema_source:
        console.print(f"Schema: {result.schema_name} ({result.schema_source})")
    match = result.file_match
    if match is not None:
        console.print(
            f"This file is byte-identical to a file of export {match.export_id} "
            f"(generation depth {match.depth}, created {match.created}, manifest {match.manifest})."
        )
    report = result.report
    if report is not None and report.synthetic:
        console.print(_runs_table(report))
        console.print(
            f"{report.n_synthetic:,} of {report.n_patients:,} patients "
            f"({report.fraction:.1%}) were made by clinsynth; deepest generation "
            f"{report.max_depth}, so a model trained on this file would be generation "
            f"{report.next_depth}. Training on it is refused unless {ALLOWANCE_FLAG} is at least "
            f"{report.fraction:.3g}."
        )
    elif result.marker_rows:
        table = Table(title=f"clinsynth_run markers ({result.n_rows:,} rows in the file)")
        table.add_column("marker")
        table.add_column("rows", justify="right")
        for marker, rows in result.marker_rows.most_common():
            table.add_row(marker, f"{rows:,}")
        console.print(table)
    if not result.found:
        console.print(f"[green]{NOT_FOUND}[/green] in {result.path}.")
    for note in result.notes:
        console.print(f"[dim]{note}[/dim]")


def register(app: typer.Typer) -> None:
    @app.command("lineage")
    def lineage_command(
        file: Annotated[Path, typer.Argument(help="A cohort file (CSV or CSV.gz).")],
        schema: Annotated[
            str | None,
            typer.Option("--schema", help="Schema name or YAML path (enables fingerprints)."),
        ] = None,
        outcomes: Annotated[
            Path | None, typer.Option("--outcomes", help="Separate outcomes file, if any.")
        ] = None,
    ) -> None:
        """Print what is known of a file's origin: clinsynth runs, generation depth, share.

        Checks the clinsynth_run column, the file's hash and (with a schema) every patient's
        content fingerprint against this machine's export registry.
        """
        with console.status("Reading the file and checking its lineage..."):
            result = inspect_file(file, schema, outcomes)
        print_file_lineage(result)
