"""``clinsynth collapse``: the iterative-retraining (model collapse) experiment on the command line.

Loads a real cohort exactly like a training run (it must be real: clinsynth-made patients are
refused), or simulates one with ``--simulate N``, runs both arms and writes a new results folder.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from clinsynth.errors import ClinsynthError

console = Console()


def _real_cohort(data: Path | None, schema: str | None, outcomes: Path | None,
                 subsample: int, simulate: int | None, seed: int):  # fmt: skip
    if simulate is not None:
        if data is not None:
            raise ClinsynthError("Give either a --data file or --simulate N, not both.")
        from clinsynth.simulate import simulate_cohort

        return simulate_cohort(simulate, seed)
    if data is None or schema is None:
        raise ClinsynthError(
            "The experiment needs a real cohort: pass --data FILE --schema NAME (and --outcomes "
            "if the schema keeps outcomes in a separate file), or --simulate N to use the "
            "mechanistic simulator instead."
        )
    from clinsynth.loader import load_cohort

    return load_cohort(
        data, schema, outcomes_path=outcomes, subsample=subsample, seed=seed, purpose="train"
    )


def register(app: typer.Typer) -> None:
    @app.command("collapse")
    def collapse_command(
        out: Annotated[Path, typer.Option("--out", help="New results folder.")],
        data: Annotated[
            Path | None, typer.Option("--data", help="Real cohort file (CSV or CSV.gz).")
        ] = None,
        schema: Annotated[
            str | None, typer.Option("--schema", help="Schema name or YAML path.")
        ] = None,
        outcomes: Annotated[
            Path | None, typer.Option("--outcomes", help="Separate outcomes file, if any.")
        ] = None,
        subsample: Annotated[
            int, typer.Option("--subsample", help="Real stays used (seeded subsample).")
        ] = 2000,
        simulate: Annotated[
            int | None,
            typer.Option("--simulate", help="Use N simulated stays instead of --data (demo)."),
        ] = None,
        generations: Annotated[int, typer.Option("--generations", help="Generations G.")] = 5,
        real_fraction: Annotated[
            float, typer.Option("--real-fraction", help="Fresh real share in the mixed arm.")
        ] = 0.3,
        epochs: Annotated[int, typer.Option("--epochs", help="Training epochs per model.")] = 20,
        hidden: Annotated[int, typer.Option("--hidden", help="Model width.")] = 64,
        n_blocks: Annotated[int, typer.Option("--blocks", help="Model depth.")] = 4,
        n_mix: Annotated[int, typer.Option("--mixtures", help="Mixture components.")] = 3,
        batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size.")] = 200,
        epsilon: Annotated[float, typer.Option("--epsilon", help="DP budget per model.")] = 4.0,
        no_dp: Annotated[
            bool, typer.Option("--no-dp", help="Train without DP (experiment only).")
        ] = False,
        seed: Annotated[int, typer.Option("--seed", help="Seed of splits, models, samples.")] = 0,
    ) -> None:
        """Train → sample → retrain for G generations, purely synthetic vs with fresh real data.

        After each generation the sample is measured against real held-out stays (tail
        coverage, variance ratio, temporal dependency errors, TSTR); writes a CSV/markdown table
        and a plot of each measure against generation for both arms.
        """
        from clinsynth.collapse import CollapseConfig, run_collapse, write_results

        start = time.perf_counter()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ClinsynthError(
                f"{out} already exists and is not empty. clinsynth never overwrites results: "
                "choose a new --out folder."
            )
        config = CollapseConfig(
            generations=generations, real_fraction=real_fraction, epochs=epochs, hidden=hidden,
            n_blocks=n_blocks, n_mix=n_mix, batch_size=batch_size, epsilon=epsilon,
            dp=not no_dp, seed=seed,
        )  # fmt: skip
        config.check()
        with console.status("Loading the real cohort..."):
            real = _real_cohort(data, schema, outcomes, subsample, simulate, seed)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} models"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("collapse experiment", total=1 + 2 * generations)

            def update(done: int, total: int, message: str) -> None:
                bar.update(task, completed=done, total=total, description=message)

            result = run_collapse(real, config, progress=update)
        source = (
            ["--simulate", simulate]
            if simulate is not None
            else ["--data", data, "--schema", schema, "--subsample", subsample]
            + (["--outcomes", outcomes] if outcomes else [])
        )
        options = [*source, "--generations", generations, "--real-fraction", real_fraction,
                   "--epochs", epochs, "--hidden", hidden, "--blocks", n_blocks,
                   "--mixtures", n_mix, "--batch-size", batch_size, "--epsilon", epsilon,
                   *(["--no-dp"] if no_dp else []), "--seed", seed, "--out", out]  # fmt: skip
        command = shlex.join(["clinsynth", "collapse", *map(str, options)])
        write_results(result, out, command)
        shown = result.table.drop(columns=["trtr_auroc", "fit_seconds", "train_patients"])
        console.print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        console.print(
            f"Results in {out} (collapse.md, collapse.csv, collapse.png); "
            f"{time.perf_counter() - start:.0f} s."
        )
