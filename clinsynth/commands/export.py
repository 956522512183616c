"""`clinsynth export RUN_DIR --out DIR`: the audited export gate on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clinsynth.export import ExportSummary, export_run

console = Console()


def print_export_summary(summary: ExportSummary) -> None:
    """Shared with `clinsynth run`: what was exported, what was dropped, where it is."""
    console.print(
        f"[green]Exported[/green] {summary.n_exported} synthetic stays to {summary.out_dir} "
        f"({summary.n_dropped} of {summary.n_synthetic} dropped: flagged by the memorisation "
        "audit as too close to a real patient)."
    )
    for rel in summary.files:
        console.print(f"  {summary.out_dir / rel}")
    console.print(f"  {summary.manifest}")


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_command(
        run_dir: Annotated[Path, typer.Argument(help="Run folder made by `clinsynth generate`.")],
        out: Annotated[Path, typer.Option("--out", help="New folder for the export.")],
        force: Annotated[
            bool, typer.Option("--force", help="Replace an existing export folder.")
        ] = False,
        allow_non_dp: Annotated[
            bool,
            typer.Option(
                "--allow-non-dp",
                help="Also export a run made WITHOUT differential privacy (no-DP or PAR "
                "baseline); the datasheet says so.",
            ),
        ] = False,
    ) -> None:
        """Export an audited run: refuses unless its audit passed and nothing changed since.

        Drops the synthetic records the audit flagged, re-keys IDs, and writes the cohort in the
        schema's layout with manifest.json and DATASHEET.md.
        """
        with console.status("Checking the audit and exporting..."):
            summary = export_run(run_dir, out, force=force, allow_non_dp=allow_non_dp)
        print_export_summary(summary)
