"""``orders config``: the effective settings, and where each value came from."""

from __future__ import annotations

import typer

from adapters.cli.context import runtime_of
from adapters.cli.output import emit, wants_json


def show_config(context: typer.Context) -> None:
    """Every setting: its environment variable, value, source (option, environment or
    default) and meaning. Secrets are masked. ``--output json``: a list of those four fields."""
    from rich.console import Console  # noqa: PLC0415 - imported when run
    from rich.table import Table  # noqa: PLC0415

    rows = runtime_of(context).settings.shown()
    if wants_json(context):
        fields = ("variable", "value", "source", "description")
        emit(context, [dict(zip(fields, row, strict=True)) for row in rows])
        return
    table = Table(title="settings")
    for column in ("variable", "value", "source", "meaning"):
        table.add_column(column, overflow="fold", no_wrap=column in {"variable", "source"})
    for row in rows:
        table.add_row(*row)
    Console().print(table)
