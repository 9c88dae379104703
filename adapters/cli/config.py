"""``orders config``: the effective settings, and where each value came from."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from adapters.cli.context import runtime_of


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"


def show_config(
    context: typer.Context,
    output: Annotated[Output, typer.Option(help="Output format")] = Output.TABLE,
) -> None:
    """Every setting: its environment variable, value, source (option, environment or
    default) and meaning. Secrets are masked."""
    from rich.console import Console  # noqa: PLC0415 - imported when run
    from rich.table import Table  # noqa: PLC0415

    rows = runtime_of(context).settings.shown()
    if output is Output.JSON:
        fields = ("variable", "value", "source", "description")
        typer.echo(json.dumps([dict(zip(fields, row, strict=True)) for row in rows], indent=2))
        return
    table = Table(title="settings")
    for column in ("variable", "value", "source", "meaning"):
        table.add_column(column, overflow="fold", no_wrap=column in {"variable", "source"})
    for row in rows:
        table.add_row(*row)
    Console().print(table)
