"""The ``orders`` command: reads the settings once (``adapters.settings``) and hands every
command what the composition root (``adapters.bootstrap``) builds from them.

Starting is cheap: this module imports typer only; each command imports what it needs when it
runs, and the sub-apps (``orders projections ...``) are loaded only when one of their commands
is run or their help is asked for (:class:`OrdersGroup`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click import Command, Context, HelpFormatter  # typer vendors click

from adapters.cli import commands, package
from adapters.cli.config import show_config
from adapters.cli.context import Runtime
from adapters.cli.errors import OneLineErrors
from adapters.cli.output import META_KEY, Format

LAZY_APPS: dict[str, tuple[str, str, str]] = {
    "consumers": ("adapters.cli.consumers", "consumers_app", "SQS consumers: views, saga."),
    "dlq": ("adapters.cli.dlq", "dlq_app", "Dead-letter queues: list and redrive."),
    "downstream": (
        "adapters.cli.downstream",
        "downstream_app",
        "Views kept by the SQS consumers: customers, sales, statuses",
    ),
    "projections": (
        "adapters.cli.projections",
        "projections_app",
        "Read models: run, status, rebuild, query",
    ),
    "indexer": ("adapters.cli.indexer", "indexer_app", "The indexed write mode's indexer."),
    "relay": ("adapters.cli.relay", "relay_app", "The outbox relay: the log to the bus."),
    "bus": ("adapters.cli.relay", "bus_app", "The event bus, its rules and queues."),
    "log": ("adapters.cli.log", "log_app", "The notification log: follow it."),
    "aws": ("adapters.cli.aws", "aws_app", "Set up every AWS resource the commands need."),
    "parked": (
        "adapters.cli.parked",
        "parked_app",
        "Orders a relay or a projection parked: list, retry, skip.",
    ),
}
"""Sub-apps by name: (module, Typer attribute, one-line help for ``orders --help``)."""

LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": (
        "adapters.cli.demo",
        "demo_app",
        "Place and advance orders; show the audit, views, a rebuild.",
    ),
}
"""Root commands loaded when run, as :data:`LAZY_APPS` (each a Typer of one command)."""


def _lazy(name: str) -> tuple[str, str, str] | None:
    return LAZY_APPS.get(name) or LAZY_COMMANDS.get(name)


class OrdersGroup(OneLineErrors):
    """The root group: what :data:`LAZY_APPS` and :data:`LAZY_COMMANDS` name is imported only
    when it runs (or its help is shown)."""

    def list_commands(self, ctx: Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_APPS, *LAZY_COMMANDS])

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        lazy = _lazy(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        module, attribute, _ = lazy
        sub_app = getattr(importlib.import_module(module), attribute)
        build = typer.main.get_group if cmd_name in LAZY_APPS else typer.main.get_command
        command: Command = build(sub_app)
        command.name = cmd_name
        _plain_help(command)
        return command

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        rows = [
            (name, lazy[2] if (lazy := _lazy(name)) else self._short_help(ctx, name))
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _short_help(self, ctx: Context, name: str) -> str:
        command = super().get_command(ctx, name)
        return command.get_short_help_str(limit=120) if command else ""


def _plain_help(command: Command) -> None:
    """Plain-text help for ``command`` and everything under it, as the root's (a sub-app
    added with ``add_typer`` would inherit it; one loaded lazily does not)."""
    command.rich_markup_mode = None  # type: ignore[attr-defined]
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


# Help is plain text: rich markup would swallow "[default: ...]" and every other bracket.
app = typer.Typer(
    name="orders",
    cls=OrdersGroup,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
for _command in commands.ORDER_COMMANDS:
    app.command(_command.__name__.rstrip("_").replace("_", "-"))(_command)
app.command("package")(package.package)
app.command("config")(show_config)


def show_version(value: bool) -> None:
    """``--version``: print the installed version and stop."""
    if value:
        from importlib.metadata import version  # noqa: PLC0415

        typer.echo(f"orders {version('eventsourced-orders')}")
        raise typer.Exit


@app.callback()
def choose_backend(
    context: typer.Context,
    *,
    backend: Annotated[
        str | None,
        typer.Option(
            help="Where events are stored: local, dynamodb or memory "
            "[default: $ORDERS_BACKEND or local]"
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the local backend keeps its files "
            "[default: $ORDERS_DATA_DIR or ~/.local/share/eventsourced-orders]",
        ),
    ] = None,
    table: Annotated[
        str | None,
        typer.Option(
            help="The DynamoDB event store table [default: $DYNAMODB_TABLE_NAME or orders-events]"
        ),
    ] = None,
    output: Annotated[
        Format,
        typer.Option(
            "--output",
            "-o",
            help="What commands print on stdout: text, json (one document) or jsonl (one "
            "object per line); progress and errors always go to stderr",
        ),
    ] = Format.TEXT,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --output json")] = False,
    as_jsonl: Annotated[bool, typer.Option("--jsonl", help="Same as --output jsonl")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=show_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """Event-sourced order service: demo, audit and operations.

    Global options are accepted before or after the subcommand. Exit status: 0 ok,
    1 operational error, 2 usage error, 3 verify mismatch. Every setting and where it came
    from: orders config.
    """
    from adapters.bootstrap.service import metrics_of  # noqa: PLC0415 - imported when run
    from adapters.settings import Settings  # noqa: PLC0415

    if as_json and as_jsonl:
        raise typer.BadParameter("give --json or --jsonl, not both")
    settings = Settings.load(backend=backend, data_dir=data_dir, events_table=table)
    metrics = metrics_of(settings)
    context.call_on_close(metrics.flush)
    context.meta[META_KEY] = Format.JSON if as_json else Format.JSONL if as_jsonl else output
    context.obj = Runtime(settings, metrics)


def main(args: list[str] | None = None) -> Any:
    """Entry point of the ``orders`` console script."""
    return app(args)
