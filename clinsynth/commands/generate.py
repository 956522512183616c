"""``clinsynth generate``: train the DP generator on a real cohort and write a new run directory."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clinsynth.generator.synthesizer import DEFAULTS

console = Console()


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        data: Annotated[Path, typer.Argument(help="Real cohort file (CSV or CSV.gz).")],
        schema: Annotated[str, typer.Option("--schema", help="Schema name or YAML path.")],
        out: Annotated[Path, typer.Option("--out", help="New run directory (must not exist).")],
        outcomes: Annotated[
            Path | None, typer.Option("--outcomes", help="Separate outcomes file, if any.")
        ] = None,
        epsilon: Annotated[
            float, typer.Option("--epsilon", help="Privacy budget ε for the whole training.")
        ] = DEFAULTS["epsilon"],
        delta: Annotated[
            float | None, typer.Option("--delta", help="δ (default 1/(10·N) for N patients).")
        ] = None,
        n: Annotated[
            int | None, typer.Option("--n", help="Synthetic stays (default: training size).")
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed (split, training, sampling).")] = 0,
        subsample: Annotated[
            int | None, typer.Option("--subsample", help="Use a seeded subsample of N patients.")
        ] = None,
        holdout: Annotated[
            float, typer.Option("--holdout", help="Share of patients held out for the audits.")
        ] = 0.2,
        epochs: Annotated[
            int | None, typer.Option("--epochs", help="Training epochs (default: generator's).")
        ] = None,
        engine: Annotated[
            str,
            typer.Option(
                "--engine",
                help="clinsynth (default, DP) or par: SDV PARSynthesizer baseline, NOT "
                "differentially private; export refuses it unless --allow-non-dp.",
            ),
        ] = "clinsynth",
        no_dp_unsafe: Annotated[
            bool,
            typer.Option(
                "--no-dp-unsafe",
                help="Train WITHOUT differential privacy (experiments only; never exportable).",
            ),
        ] = False,
        allow_synthetic_fraction: Annotated[
            float,
            typer.Option(
                "--allow-synthetic-fraction",
                help="Experts only: admit at most this share of clinsynth-made patients "
                "(default 0: refused). Recorded in the manifest with the generation depth.",
            ),
        ] = 0.0,
    ) -> None:
        """Train a differentially private generator on DATA and sample a synthetic cohort."""
        from clinsynth.generation import generate_run
        from clinsynth.runs import read_manifest

        run_dir = generate_run(
            data,
            schema,
            out,
            outcomes_path=outcomes,
            subsample=subsample,
            epsilon=epsilon,
            delta=delta,
            n=n,
            seed=seed,
            holdout_fraction=holdout,
            dp=not no_dp_unsafe,
            epochs=epochs,
            engine=engine,
            progress=True,
            command=shlex.join(["clinsynth", *sys.argv[1:]]),
            allow_synthetic_fraction=allow_synthetic_fraction,
        )
        manifest = read_manifest(run_dir)
        privacy, counts = manifest["privacy"], manifest["input"]["n_patients"]
        if privacy["dp"]:
            console.print(
                f"Privacy: ε spent = {privacy['epsilon']:.3f} "
                f"(target {privacy['target_epsilon']:g}), "
                f"δ = {privacy['delta']:.2e}, noise multiplier {privacy['noise_multiplier']:.3f}, "
                f"{privacy['steps']} steps."
            )
        else:
            console.print("[bold red]Privacy: NONE (ε = ∞) — this run can never be exported.[/]")
        console.print(
            f"Trained on {counts['train']} patients ({counts['holdout']} held out for the audit); "
            f"sampled {manifest['config']['n_synthetic']} synthetic stays in "
            f"{manifest['timings']['total_s']:.0f} s."
        )
        lineage = manifest.get("lineage") or {}
        if (lineage.get("training") or {}).get("synthetic_patients"):
            share = lineage["training"]["synthetic_fraction"]
            console.print(
                f"[yellow]Lineage:[/yellow] {share:.1%} of the training patients were made by "
                f"clinsynth (allowed: {allow_synthetic_fraction:g}); this run is generation "
                f"depth {lineage['depth']}."
            )
        console.print(f"Run folder: {run_dir}")
        console.print(f"  synthetic cohort: {run_dir / 'synthetic'}")
        console.print(f"  model: {run_dir / 'model.pt'}   manifest: {run_dir / 'manifest.json'}")
        console.print(f"Next: clinsynth audit {run_dir}")
