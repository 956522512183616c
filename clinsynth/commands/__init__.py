"""CLI commands, one module each; every module exposes ``register(app)``."""

from __future__ import annotations

import importlib

import typer

# Order is the order in `clinsynth --help`.
COMMAND_MODULES = [
    "run",
    "validate",
    "generate",
    "audit",
    "export",
    "review",
    "schema",
    "importers",
    "simulate",
    "lineage",
    "collapse",
]


def register_all(app: typer.Typer) -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"clinsynth.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"clinsynth.commands.{name}":
                continue  # command not built yet
            raise
        module.register(app)
