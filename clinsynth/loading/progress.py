"""A stage-by-stage progress bar for loading (reading + cleaning a big file takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class Stages:
    """``stages.next("cleaning values")`` names the stage now running; silent without a bar."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self._progress = progress
        self._task = progress.add_task("loading", total=total) if progress else None
        self._finished = 0

    def next(self, description: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=description, completed=self._finished)
            self._finished += 1


@contextmanager
def stages(enabled: bool, total: int) -> Iterator[Stages]:
    if not enabled:
        yield Stages(None, total)
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield Stages(progress, total)
