"""The ``clinsynth`` command line: user-fixable problems are one paragraph, not a traceback."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.panel import Panel
from typer.core import TyperGroup

from clinsynth.errors import ClinsynthError

err_console = Console(stderr=True)


class FriendlyGroup(TyperGroup):
    """Turns ClinsynthError (and surprises) into a short message and a non-zero exit code."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ClinsynthError as exc:
            err_console.print(Panel(str(exc), title="clinsynth: cannot continue", style="red"))
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # last line of defence for the analyst
            if os.environ.get("CLINSYNTH_DEBUG"):
                raise
            err_console.print(
                Panel(
                    f"Unexpected {type(exc).__name__}: {exc}\n\nThis is a bug in clinsynth; "
                    "nothing was exported. Re-run with CLINSYNTH_DEBUG=1 for the full traceback.",
                    title="clinsynth: internal error",
                    style="red",
                )
            )
            raise typer.Exit(70) from None


def make_app() -> typer.Typer:
    app = typer.Typer(
        cls=FriendlyGroup,
        help="Turn a real longitudinal patient cohort into an audited, differentially private "
        "synthetic cohort that is safe to share.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    from clinsynth.commands import register_all

    register_all(app)
    return app


app = make_app()


def main() -> None:
    app()
