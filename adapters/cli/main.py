"""The ``orders`` command: the one composition root that builds backends from configuration.

Starting is cheap: this module imports typer only; each command imports what it needs when it
runs, and the sub-apps (``orders projections ...``) are loaded only when one of their commands
is run or their help is asked for (:class:`OrdersGroup`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer
from typer._click import Command, Context, HelpFormatter  # typer vendors click

from adapters.cli import commands, package
from adapters.cli.errors import DataDirError, OneLineErrors
from adapters.cli.output import META_KEY, Format

if TYPE_CHECKING:
    from adapters.observability.telemetry import MetricsSink
    from orders import OrderService

SQLITE_HEADER = b"SQLite format 3\x00"

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


class Backend(StrEnum):
    """Where the service keeps its events."""

    LOCAL = "local"
    DYNAMODB = "dynamodb"


def _null_metrics() -> MetricsSink:
    from adapters.observability.telemetry import NullMetrics  # noqa: PLC0415

    return NullMetrics()


@dataclass(frozen=True)
class Settings:
    """The backend the global options chose; every command builds what it needs from it.

    ``local`` keeps events (and views) in SQLite under ``data_dir``. ``dynamodb`` uses ``table``,
    reached through the standard AWS variables (``AWS_ENDPOINT_URL_DYNAMODB`` for DynamoDB Local)
    and the store's own settings (``DYNAMODB_CREATE_TABLE=y`` to create it), all read from the
    process environment (see ``adapters.dynamodb``). ``metrics`` is where commands report
    (``$ORDERS_METRICS``, see ``adapters.observability.telemetry``; flushed when the command ends).
    """

    backend: Backend
    data_dir: Path
    table: str
    metrics: MetricsSink = field(default_factory=_null_metrics)

    def service(self) -> OrderService:
        """The ``OrderService`` on the chosen backend, reporting to ``metrics`` if they are on.

        On the local backend the data directory is checked first (:meth:`check_data_dir`).
        """
        from adapters.local.backend import local_env  # noqa: PLC0415
        from adapters.observability.observed import observe_commands  # noqa: PLC0415
        from adapters.observability.telemetry import NullMetrics, get_logger  # noqa: PLC0415
        from orders import OrderService  # noqa: PLC0415

        if self.backend is Backend.DYNAMODB:
            service = OrderService(
                env={"PERSISTENCE_MODULE": "adapters.dynamodb", "DYNAMODB_TABLE_NAME": self.table}
            )
        else:
            self.check_data_dir(create=True)
            service = OrderService(env=local_env(self.data_dir))
        if isinstance(self.metrics, NullMetrics):
            return service
        return observe_commands(service, self.metrics, get_logger())

    def existing_service(self, order_id: UUID | None = None) -> OrderService:
        """The service, to read what is stored. On the local backend, a data directory that
        holds no orders (missing, or no events file) is a ``DataDirError`` saying so (and naming
        ``order_id``, if given, as not found), and no file is created."""
        if self.backend is Backend.LOCAL:
            from adapters.local.backend import EVENTS_FILE_NAME  # noqa: PLC0415

            wanted = f"order {order_id} not found: " if order_id else ""
            if not self.data_dir.exists():
                raise DataDirError(f"{wanted}--data-dir {self.data_dir} does not exist")
            self.check_data_dir(create=False)
            if not (self.data_dir / EVENTS_FILE_NAME).exists():
                msg = f"{wanted}--data-dir {self.data_dir} holds no orders (no {EVENTS_FILE_NAME})"
                raise DataDirError(msg)
        return self.service()

    def check_data_dir(self, *, create: bool) -> None:
        """Refuse a data directory that cannot work, naming the path, before any file is made.

        A missing directory is created only when ``create`` (a command that writes) and its
        parent exists; a path that is a file, a directory that is not writable, or an SQLite
        file in it that is not a database, is a ``DataDirError``.
        """
        directory = self.data_dir
        if directory.exists() and not directory.is_dir():
            raise DataDirError(f"--data-dir {directory} is a file, not a directory")
        if not directory.exists():
            if not create:
                raise DataDirError(f"--data-dir {directory} does not exist")
            if not directory.parent.is_dir():
                msg = f"--data-dir {directory}: its parent {directory.parent} does not exist"
                raise DataDirError(msg)
            return
        for path in sorted(directory.glob("*.sqlite3")):
            _check_sqlite_file(path)
        import os  # noqa: PLC0415

        if create and not os.access(directory, os.W_OK | os.X_OK):
            raise DataDirError(f"--data-dir {directory} is read-only")


def _check_sqlite_file(path: Path) -> None:
    import os  # noqa: PLC0415

    if not path.is_file():
        raise DataDirError(f"{path} is not a file")
    if not os.access(path, os.R_OK):
        raise DataDirError(f"{path} is not readable")
    with path.open("rb") as file:
        header = file.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        raise DataDirError(f"{path} is not an SQLite database (corrupt or another file)")
    if not os.access(path, os.W_OK):
        raise DataDirError(f"{path} is read-only")


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
        Backend, typer.Option(envvar="ORDERS_BACKEND", help="Where events are stored")
    ] = Backend.LOCAL,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the local backend keeps its files "
            "[default: $ORDERS_DATA_DIR or ~/.local/share/eventsourced-orders]",
        ),
    ] = None,
    table: Annotated[
        str, typer.Option(envvar="DYNAMODB_TABLE_NAME", help="The DynamoDB event store table")
    ] = "orders-events",
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
    1 operational error, 2 usage error, 3 verify mismatch.
    """
    from adapters.local.backend import default_data_dir  # noqa: PLC0415
    from adapters.observability.telemetry import metrics_from_env  # noqa: PLC0415

    metrics = metrics_from_env()
    context.call_on_close(metrics.flush)
    if as_json and as_jsonl:
        raise typer.BadParameter("give --json or --jsonl, not both")
    context.meta[META_KEY] = Format.JSON if as_json else Format.JSONL if as_jsonl else output
    context.obj = Settings(backend, data_dir or default_data_dir(), table, metrics)


def settings_of(context: typer.Context) -> Settings:
    """The settings the global options chose (the root context holds them)."""
    settings: Settings = context.find_root().obj
    return settings


def main(args: list[str] | None = None) -> Any:
    """Entry point of the ``orders`` console script."""
    return app(args)
