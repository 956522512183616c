"""`clinsynth review-sheet` and `clinsynth review-score`: the clinician's pen-and-paper review."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clinsynth.review import ReviewPack, ReviewScore, make_review_pack, score_review
from clinsynth.review.scoring import Rate

console = Console()


def print_pack(pack: ReviewPack) -> None:
    """Shared with `clinsynth run`: what to hand over and what to keep."""
    console.print(
        f"[green]Review sheets[/green]: {pack.n_pages} pages in {pack.pdf}\n"
        f"  Hand the clinician the folder {pack.directory} (sheets PDF + review_form.csv/.xlsx).\n"
        f"  Keep the key {pack.key} yourself"
        + (
            f": it says which {pack.n_real} sheets show real patients."
            if pack.n_real
            else " (all sheets are synthetic; the key lists their codes)."
        )
    )


def _pct(rate: Rate) -> str:
    if rate.n == 0:
        return "—"
    ci = f"95% CI {100 * rate.low:.0f}–{100 * rate.high:.0f}%"
    return f"{100 * rate.value:.0f}% ({rate.k}/{rate.n}; {ci})"


def print_score(result: ReviewScore) -> None:
    table = Table(title=f"Clinician review: {result.n_sheets} sheets", show_lines=False)
    table.add_column("measure")
    table.add_column("value")
    table.add_row("implausible, synthetic sheets", _pct(result.implausible_synthetic))
    if result.implausible_real is not None:
        table.add_row("implausible, real sheets (baseline)", _pct(result.implausible_real))
    table.add_row("implausible, all sheets", _pct(result.implausible_overall))
    table.add_row("unsure, synthetic sheets", _pct(result.unsure_synthetic))
    dist = result.distinguishability
    if dist is not None:
        table.add_row("real vs synthetic: accuracy", _pct(dist.accuracy))
        table.add_row(
            "  chance level / p-value", f"{100 * dist.chance:.0f}% / p = {dist.p_value:.3g}"
        )
        table.add_row("  real called real", _pct(dist.real_called_real))
        table.add_row("  synthetic called synthetic", _pct(dist.synthetic_called_synthetic))
    console.print(table)
    if dist is not None:
        console.print(f"Real vs synthetic: [bold]{dist.verdict}[/bold] (≈50% = indistinguishable).")


def register(app: typer.Typer) -> None:
    @app.command("review-sheet")
    def review_sheet(
        run_dir: Annotated[Path, typer.Argument(help="Run folder (made by `clinsynth generate`).")],
        n: Annotated[int, typer.Option("--n", help="Number of sheets (pages) in all.")] = 40,
        include_real: Annotated[
            int,
            typer.Option(
                "--include-real",
                help="Blinded mode: this many of the sheets show real held-out patients.",
            ),
        ] = 0,
        seed: Annotated[int, typer.Option("--seed", help="Seed for choice and order.")] = 0,
        out: Annotated[
            Path | None,
            typer.Option(
                "--out",
                help="Folder for sheets and forms (default RUN_DIR/review); the key goes "
                "beside it as <folder>_key.csv.",
            ),
        ] = None,
        force: Annotated[bool, typer.Option("--force", help="Replace an earlier pack.")] = False,
    ) -> None:
        """Printable plausibility review sheets (PDF, one patient a page) + verdict forms."""
        pack = make_review_pack(
            run_dir, n=n, include_real=include_real, seed=seed, out_dir=out, force=force
        )
        print_pack(pack)

    @app.command("review-score")
    def review_score(
        run_dir: Annotated[Path, typer.Argument(help="Run folder the sheets came from.")],
        form: Annotated[Path, typer.Argument(help="Filled review_form.csv or .xlsx.")],
        key: Annotated[
            Path | None,
            typer.Option("--key", help="Review key (default RUN_DIR/review_key.csv)."),
        ] = None,
    ) -> None:
        """Score a filled review form: implausibility rates; blinded, real-vs-synthetic accuracy."""
        print_score(score_review(run_dir, form, key))
