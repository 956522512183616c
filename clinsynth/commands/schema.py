"""``clinsynth schema list|show|infer``: find, read and draft cohort schemas."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clinsynth.errors import ClinsynthError

schema_app = typer.Typer(help="List, show and draft cohort schemas.", no_args_is_help=True)


class LayoutChoice(StrEnum):
    long = "long"
    wide = "wide"


def _range(value) -> str:
    return "" if value is None else f"{value[0]:g} – {value[1]:g}"


@schema_app.command("list")
def list_schemas() -> None:
    """The schemas clinsynth can find (schemas/ and $CLINSYNTH_SCHEMAS)."""
    from clinsynth.schema import available_schemas, load_schema, resolve_schema_path

    table = Table(title="Schemas")
    for column in ("name", "layout", "fields", "description", "file"):
        table.add_column(column)
    for name in available_schemas():
        path = resolve_schema_path(name)
        try:
            schema = load_schema(name)
        except ClinsynthError as exc:
            table.add_row(name, "", "", f"[red]not loadable: {str(exc)[:80]}…[/red]", str(path))
            continue
        n = len(schema.statics) + len(schema.outcomes) + len(schema.variables)
        layout = f"{schema.layout.format}, {schema.layout.time_format}"
        table.add_row(name, layout, str(n), schema.description[:70], str(path))
    Console().print(table)


@schema_app.command("show")
def show(name: Annotated[str, typer.Argument(help="Schema name or path to a .yaml file.")]) -> None:
    """A schema's layout and fields as tables."""
    from clinsynth.schema import load_schema

    schema = load_schema(name)
    console = Console()
    layout = schema.layout
    console.print(f"[bold]{schema.name}[/bold] v{schema.version}: {schema.description}")
    columns = f"id {layout.id_column}, time {layout.time_column} ({layout.time_format})"
    if layout.format == "long":
        columns += f", variable {layout.variable_column}, value {layout.value_column}"
    console.print(f"Layout: {layout.format}; {columns}.")
    console.print(
        f"Missing sentinels: {layout.missing_sentinels or 'none'}; ignored: "
        f"{', '.join(layout.ignore_variables) or 'none'}; outcomes in a separate file: "
        f"{'yes' if layout.outcomes_file else 'no'}. Grid: {schema.grid.step_hours:g} h steps "
        f"to {schema.grid.horizon_hours:g} h."
    )
    table = Table(title=f"{schema.name}: fields")
    for column in ("role", "name", "type", "unit", "hard limits", "normal range", "prec.", "notes"):
        table.add_column(column)
    groups = [("static", schema.statics), ("outcome", schema.outcomes)]
    for role, fields in [*groups, ("variable", schema.variables)]:
        for f in fields:
            notes = []
            if f.categories:
                notes.append("categories: " + ", ".join(str(c) for c in f.categories))
            if f.transform != "none":
                notes.append(f"transform {f.transform}")
            if f.inferred:
                notes.append("[yellow]inferred: needs review[/yellow]")
            group = getattr(f, "group", None)
            label = f"{role} ({group})" if group and group != "other" else role
            precision = "" if f.precision is None else str(f.precision)
            table.add_row(
                label,
                f.name,
                f.type.value,
                f.unit,
                _range(f.hard_limits),
                _range(f.normal_range),
                precision,
                "; ".join(notes),
            )
    console.print(table)
    if schema.rules:
        console.print(f"{len(schema.rules)} cross-variable rule(s):")
        for rule in schema.rules:
            console.print(f"  - {rule.kind}: {', '.join(rule.variables)} {rule.description}")


@schema_app.command("infer")
def infer(
    data: Annotated[Path, typer.Argument(help="CSV(.gz) file to draft a schema from.")],
    layout: Annotated[
        LayoutChoice | None, typer.Option("--layout", help="Force long or wide (default: detect).")
    ] = None,
    id_column: Annotated[str | None, typer.Option("--id-column", help="Patient id column.")] = None,
    time_column: Annotated[str | None, typer.Option("--time-column", help="Time column.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Schema name (default: file)")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the draft here (default: print it).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
) -> None:
    """Draft a schema from a data file: ranges are left as TODOs for a clinician to fill."""
    from clinsynth.io import write_text_atomic
    from clinsynth.schema_infer import draft_yaml, infer_schema

    if out is not None and out.exists() and not force:
        raise ClinsynthError(
            f"{out} already exists; clinsynth never overwrites files silently. Choose another "
            "--out or pass --force."
        )
    err = Console(stderr=True)
    with err.status(f"Reading {data.name}…"):
        draft = infer_schema(
            data,
            layout=layout.value if layout else None,
            id_column=id_column,
            time_column=time_column,
        )
    schema_name = name or data.name.split(".")[0]
    text = draft_yaml(draft, schema_name, data.name)
    _print_review(err, draft)
    if out is None:
        print(text)
    else:
        write_text_atomic(out, text)
        err.print(
            f"Wrote the draft {out}. It will not load until every TODO_ placeholder is replaced "
            f"by a clinically sourced value; then check it with `clinsynth schema show {out}`."
        )


def _print_review(console: Console, draft) -> None:
    spec = draft.layout
    console.print(
        f"Detected a {spec['format']} file: {draft.n_patients:,} patients, {draft.n_rows:,} rows; "
        f"id '{spec['id_column']}', time '{spec['time_column']}' ({spec['time_format']})."
    )
    table = Table(
        title="Names found (observed min/max: from the real data, for your review only — "
        "NOT written to the draft)"
    )
    for column in ("name", "role", "type", "patients", "observed min", "observed max"):
        table.add_column(column)
    for f in draft.fields:
        low, high = ("", "") if f.observed is None else (f"{f.observed[0]:g}", f"{f.observed[1]:g}")
        role = "ignored" if f.kind == "text" else f.kind
        table.add_row(f.name, role, f.type, f"{f.n_patients:,}", low, high)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(schema_app, name="schema")
