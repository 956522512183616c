"""``clinsynth audit``: audit a run directory, or any three cohort files, and print the verdict.

Exit codes: 0 the cohort passed, 4 it failed the policy (distinct from 2/3, which mean the audit
could not be run: bad input, refused cohort).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from audits.result import AuditResult
from clinsynth.errors import ClinsynthError

AUDIT_FAILED_EXIT = 4
console = Console()


def checks_table(result: AuditResult) -> Table:
    """check, value, threshold, pass/fail: one row per check, grouped by family."""
    table = Table(title=f"Audit checks (policy '{result.policy_name}')")
    table.add_column("check", no_wrap=True)
    for column in ("value", "threshold", "result", "required"):
        table.add_column(column, justify="right", no_wrap=True)
    family = None
    for c in result.checks:
        if c.family != family:
            family = c.family
            table.add_section()
        op = "≤" if c.direction == "max" else "≥"
        thr = f"{op} {c.threshold:.3g}" if c.threshold is not None else "—"
        value = "n/a" if c.value != c.value else f"{c.value:.3g}"
        style = {"pass": "green", "FAIL": "bold red", "n/a": "dim"}[c.status]
        table.add_row(
            c.name, value, thr, f"[{style}]{c.status}[/{style}]", "yes" if c.required else "no"
        )
    return table


def print_result(result: AuditResult, folder: Path) -> None:
    console.print(checks_table(result))
    console.print(
        f"{len(result.flagged_synthetic_ids)} synthetic records flagged as too close to a real "
        "patient (dropped on export)."
    )
    console.print(f"Report: {folder / 'audit.html'}   Details: {folder / 'audit.json'}")
    if result.passed:
        console.print("[green bold]Audit PASSED.[/green bold]")
    else:
        names = ", ".join(c.name for c in result.failed_required)
        console.print(
            f"[red bold]Audit FAILED[/red bold]: {names}. Open audit.html for what went wrong; "
            "this cohort must not be shared."
        )


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit(
        run_dir: Annotated[
            Path | None, typer.Argument(help="A run directory made by `clinsynth generate`.")
        ] = None,
        policy: Annotated[
            str, typer.Option("--policy", help="Audit policy: default, strict or a YAML path.")
        ] = "default",
        schema: Annotated[
            str | None, typer.Option("--schema", help="Files mode: schema name or path.")
        ] = None,
        real: Annotated[
            Path | None, typer.Option("--real", help="Files mode: real training members.")
        ] = None,
        real_outcomes: Annotated[Path | None, typer.Option("--real-outcomes")] = None,
        holdout: Annotated[
            Path | None,
            typer.Option("--holdout", help="Files mode: real patients NOT used for training."),
        ] = None,
        holdout_outcomes: Annotated[Path | None, typer.Option("--holdout-outcomes")] = None,
        synthetic: Annotated[
            Path | None, typer.Option("--synthetic", help="Files mode: the synthetic cohort.")
        ] = None,
        synthetic_outcomes: Annotated[Path | None, typer.Option("--synthetic-outcomes")] = None,
        reference: Annotated[
            Path | None,
            typer.Option("--reference", help="Real population sample for the density attack."),
        ] = None,
        reference_outcomes: Annotated[Path | None, typer.Option("--reference-outcomes")] = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="Files mode: folder for audit.json/html.")
        ] = None,
        force: Annotated[
            bool, typer.Option("--force", help="Files mode: replace an existing --out folder.")
        ] = False,
    ) -> None:
        """Audit a synthetic cohort: privacy, copies, temporal structure, plausibility, utility.

        Exit code 0 if it passes the policy, 4 if it fails.
        """
        from clinsynth.auditing import audit_files, audit_run

        files = {
            "--schema": schema,
            "--real": real,
            "--holdout": holdout,
            "--synthetic": synthetic,
            "--out": out,
        }
        if run_dir is not None:
            given = [k for k, v in files.items() if v is not None]
            if given:
                raise ClinsynthError(
                    f"Give either a RUN_DIR or the files ({', '.join(files)}), not both "
                    f"(got RUN_DIR and {', '.join(given)})."
                )
            result = audit_run(
                run_dir,
                policy=policy,
                reference=reference,
                reference_outcomes=reference_outcomes,
            )
            folder = run_dir
        else:
            missing = [k for k, v in files.items() if v is None]
            if missing:
                raise ClinsynthError(
                    "Nothing to audit: give a RUN_DIR made by `clinsynth generate`, or audit any "
                    "files with --schema, --real, --holdout, --synthetic and --out "
                    f"(missing: {', '.join(missing)})."
                )
            result = audit_files(
                schema,
                real,
                holdout,
                synthetic,
                out,  # type: ignore[arg-type]
                real_outcomes=real_outcomes,
                holdout_outcomes=holdout_outcomes,
                synthetic_outcomes=synthetic_outcomes,
                reference=reference,
                reference_outcomes=reference_outcomes,
                policy=policy,
                force=force,
            )
            folder = out  # type: ignore[assignment]
        print_result(result, folder)
        if not result.passed:
            raise typer.Exit(AUDIT_FAILED_EXIT)
