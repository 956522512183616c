"""``clinsynth simulate``: (re)make the bundled sample data from the mechanistic simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from clinsynth.errors import ClinsynthError

DEFAULT_OUT = Path("sample_data/icu_sim.csv.gz")


def simulate(
    n: Annotated[int, typer.Option("--n", min=1, help="Number of simulated patients.")] = 1000,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed (same seed, same bytes).")
    ] = 2012,
    out: Annotated[
        Path, typer.Option("--out", help="Output .csv.gz in the icu_sim schema's layout.")
    ] = DEFAULT_OUT,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Simulate ICU stays (no real patients) and write them in the icu_sim schema's layout."""
    from clinsynth.simulate import write_sample

    if out.exists() and not force:
        raise ClinsynthError(
            f"{out} already exists. clinsynth never overwrites files silently: choose another "
            "--out, or pass --force to replace it."
        )
    if out.exists() and out.is_dir():
        raise ClinsynthError(f"{out} is a directory; --out must name a .csv.gz file.")
    console = Console()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        progress.add_task(f"Simulating {n} patients (seed {seed})", total=None)
        summary = write_sample(out, n, seed)
    artefacts = ", ".join(f"{k} {v}" for k, v in summary["artefacts"].items())
    console.print(
        f"Wrote {out}: {summary['n_patients']} simulated patients, {summary['rows']} rows, "
        f"in-hospital mortality {summary['mortality']:.1%}; deliberate artefacts: {artefacts}."
    )


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
