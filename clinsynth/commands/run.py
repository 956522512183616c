"""`clinsynth run`: the whole job in one command — generate, audit, export if it passes, review.

Load and validation happen inside generation (the loader refuses a bad cohort before any
training). A failed audit is not an error in the run itself: the run folder is kept for
inspection, nothing is exported, and the exit code is 4 (like `clinsynth audit`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from clinsynth.errors import ClinsynthError
from clinsynth.runs import AUDIT_HTML, read_manifest
from clinsynth.schema import load_schema

console = Console()
AUDIT_FAILED_EXIT = 4


def _get(check: Any, name: str) -> Any:
    return check.get(name) if isinstance(check, dict) else getattr(check, name, None)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "—" if value is None else str(value)


def checks_table(checks: list[Any]) -> Table:
    table = Table(title="Audit", show_lines=False)
    table.add_column("check", overflow="fold")
    for col in ("family", "value", "threshold", "result"):
        table.add_column(col, no_wrap=True)
    for c in checks:
        passed = _get(c, "passed")
        required = _get(c, "required")
        if passed is None:
            result = "[dim]n/a[/dim]"
        elif passed:
            result = "[green]pass[/green]"
        else:
            result = "[red]FAIL[/red]" if required else "[yellow]fail (advisory)[/yellow]"
        direction = {"max": "≤ ", "min": "≥ "}.get(str(_get(c, "direction")), "")
        table.add_row(
            str(_get(c, "name")),
            str(_get(c, "family") or ""),
            _fmt(_get(c, "value")),
            direction + _fmt(_get(c, "threshold")),
            result,
        )
    return table


def privacy_line(run_dir: Path) -> str:
    privacy = read_manifest(run_dir).get("privacy") or {}
    eps, delta = privacy.get("epsilon"), privacy.get("delta")
    target = privacy.get("target_epsilon")
    text = f"Privacy: ε spent = {_fmt(eps)}"
    if target is not None:
        text += f" (target {_fmt(target)})"
    return text + f", δ = {_fmt(delta)}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ClinsynthError(
            f"{out} already exists and is not empty. clinsynth never overwrites a run: choose a "
            "new --out folder (or delete the old one yourself)."
        )


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_command(
        data: Annotated[Path, typer.Argument(help="Real cohort file (CSV or CSV.gz).")],
        schema: Annotated[str, typer.Option("--schema", help="Schema name or YAML path.")],
        out: Annotated[Path, typer.Option("--out", help="New run folder.")],
        outcomes: Annotated[
            Path | None, typer.Option("--outcomes", help="Separate outcomes file, if any.")
        ] = None,
        epsilon: Annotated[
            float | None, typer.Option("--epsilon", help="Privacy budget ε (default: generator's).")
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed (split, training, sampling).")] = 0,
        n: Annotated[
            int | None,
            typer.Option("--n", help="Synthetic stays (default: training size)."),
        ] = None,
        subsample: Annotated[
            int | None, typer.Option("--subsample", help="Use a seeded subsample of N patients.")
        ] = None,
        policy: Annotated[
            str, typer.Option("--policy", help="Audit policy: default, strict or a YAML path.")
        ] = "default",
        review_sheets: Annotated[
            int, typer.Option("--review-sheets", help="Review sheets to draw if passed (0: none).")
        ] = 40,
        allow_synthetic_fraction: Annotated[
            float,
            typer.Option(
                "--allow-synthetic-fraction",
                help="Experts only: admit at most this share of clinsynth-made patients "
                "(default 0: refused). Recorded in the manifest with the generation depth.",
            ),
        ] = 0.0,
    ) -> None:
        """Generate a DP synthetic cohort, audit it, export it (+ review sheets) if it passes."""
        from clinsynth.auditing import audit_run
        from clinsynth.commands.export import print_export_summary
        from clinsynth.commands.review import print_pack
        from clinsynth.export import export_run, next_steps
        from clinsynth.generation import generate_run
        from clinsynth.review import make_review_pack

        start = time.perf_counter()
        schema_obj = load_schema(schema)
        _check_out(out)
        if review_sheets < 0:
            raise ClinsynthError("--review-sheets must be 0 (none) or more.")

        console.rule("[bold]1/3 Load, validate and generate")
        options: dict[str, Any] = {"outcomes_path": outcomes, "subsample": subsample, "n": n}
        options["allow_synthetic_fraction"] = allow_synthetic_fraction  # lineage allowance
        if epsilon is not None:
            options["epsilon"] = epsilon
        command = f"clinsynth run {data} --schema {schema} --out {out} --seed {seed}" + "".join(
            f" --{k.replace('_path', '')} {v}" for k, v in options.items() if v is not None
        )
        run_dir = Path(
            generate_run(
                data, schema_obj, out, seed=seed, progress=True, command=command, **options
            )
        )

        console.rule("[bold]2/3 Audit")
        result = audit_run(run_dir, policy=policy)

        pack = summary = None
        if result.passed:
            console.rule("[bold]3/3 Export and review sheets")
            summary = export_run(run_dir, run_dir / "export")
            if review_sheets:
                pack = make_review_pack(run_dir, n=min(review_sheets, summary.n_exported))

        console.rule("[bold]Summary")
        console.print(privacy_line(run_dir))
        console.print(checks_table(list(result.checks)))
        console.print(f"Run folder: {run_dir}  (audit report: {run_dir / AUDIT_HTML})")
        elapsed = time.perf_counter() - start
        if not result.passed:
            failed = [c for c in result.checks if _get(c, "passed") is False]
            required = [str(_get(c, "name")) for c in failed if _get(c, "required") is not False]
            families = {str(_get(c, "family")) for c in failed if _get(c, "required") is not False}
            console.print(
                f"[red bold]Audit FAILED[/red bold] (required checks failing: "
                f"{', '.join(required)}): nothing was exported.\n"
                f"Next: read {run_dir / AUDIT_HTML} to see why. {next_steps(families)} Keep this "
                "folder for comparison."
            )
            console.print(f"Finished in {_duration(elapsed)}.")
            raise typer.Exit(AUDIT_FAILED_EXIT)
        console.print("[green bold]Audit PASSED.[/green bold]")
        if summary is not None:
            print_export_summary(summary)
        if pack is not None:
            print_pack(pack)
        console.print(
            "Next: share the export folder (with its DATASHEET.md); have a clinician fill in the "
            "review form, then `clinsynth review-score "
            f"{run_dir} {run_dir / 'review' / 'review_form.xlsx'}`."
        )
        console.print(f"Finished in {_duration(elapsed)}.")
