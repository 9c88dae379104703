"""The ``orders`` command: the one composition root that builds backends from configuration."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from adapters.consumers_cli import consumers_app
from adapters.demo import run_demo
from adapters.dlq_cli import dlq_app
from adapters.local import default_data_dir, local_env
from adapters.projections_cli import backends, demo_views, projections_app
from orders import Order, OrderError, OrderService

app = typer.Typer(no_args_is_help=True)
app.add_typer(consumers_app, name="consumers")
app.add_typer(dlq_app, name="dlq")
app.add_typer(projections_app, name="projections")
# Piped output (CI logs, tests) gets a width that fits uuids and timestamps instead of 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)


class Backend(StrEnum):
    """Where the service keeps its events."""

    LOCAL = "local"
    DYNAMODB = "dynamodb"


@dataclass(frozen=True)
class Settings:
    """The backend the global options chose; every command builds what it needs from it.

    ``local`` keeps events (and views) in SQLite under ``data_dir``. ``dynamodb`` uses ``table``,
    reached through the standard AWS variables (``AWS_ENDPOINT_URL_DYNAMODB`` for DynamoDB Local)
    and the store's own settings (``DYNAMODB_CREATE_TABLE=y`` to create it), all read from the
    process environment (see ``adapters.dynamodb``).
    """

    backend: Backend
    data_dir: Path
    table: str

    def service(self) -> OrderService:
        """The ``OrderService`` on the chosen backend."""
        if self.backend is Backend.DYNAMODB:
            return OrderService(
                env={"PERSISTENCE_MODULE": "adapters.dynamodb", "DYNAMODB_TABLE_NAME": self.table}
            )
        return OrderService(env=local_env(self.data_dir))


@app.callback()
def choose_backend(
    context: typer.Context,
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
) -> None:
    """Event-sourced order service: demo, audit and operations."""
    context.obj = Settings(backend, data_dir or default_data_dir(), table)


def settings_of(context: typer.Context) -> Settings:
    """The settings the global options chose (the root context holds them)."""
    settings: Settings = context.find_root().obj
    return settings


def service_of(context: typer.Context) -> OrderService:
    return settings_of(context).service()


def order_table(order: Order) -> Table:
    table = Table(title=f"state at version {order.version}", show_header=False)
    table.add_row("order", str(order.id))
    table.add_row("customer", order.customer_id)
    table.add_row("status", order.status)
    table.add_row(
        "lines",
        ", ".join(f"{line.quantity} x {line.sku} @ {line.unit_price}" for line in order.lines),
    )
    table.add_row("total", f"{order.total} {order.currency}")
    return table


def history_table(service: OrderService, order_id: UUID) -> Table:
    table = Table(title=f"history of order {order_id}")
    for column in (
        "version",
        "event",
        "recorded at (UTC)",
        "correlation id",
        "caused by",
        "details",
    ):
        table.add_column(column)
    for entry in service.history(order_id):
        table.add_row(
            str(entry.version),
            entry.type_name,
            entry.timestamp.isoformat(timespec="milliseconds"),
            entry.correlation_id,
            entry.causation_id or "",
            ", ".join(f"{name}={value}" for name, value in entry.details.items()),
        )
    return table


@app.command()
def demo(
    context: typer.Context,
    order_count: Annotated[
        int, typer.Option("--orders", min=1, help="How many orders to place")
    ] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the random journeys")] = 7,
) -> None:
    """Place and advance a few hundred orders, audit one, then show and rebuild the views."""
    service, views = (chosen := backends(context)).service, chosen.store
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("placing and advancing orders", total=order_count)
        summary = run_demo(service, order_count, seed, lambda: progress.advance(task))

    statuses = {order_id: service.get_order(order_id).status for order_id in summary.placed}
    table = Table(title="demo summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("orders placed", str(len(summary.placed)))
    table.add_row("commands sent", str(summary.commands))
    table.add_row("commands refused (nothing recorded)", str(sum(summary.rejected.values())))
    table.add_row("events in the notification log", str(service.recorder.max_notification_id()))
    table.add_row("commands per second", f"{summary.commands / summary.seconds:,.0f}")
    for status in ("pending", "processing", "completed", "cancelled"):
        table.add_row(f"orders {status}", str(sum(1 for s in statuses.values() if s == status)))
    console.print(table)
    for rule, message in sorted(summary.rejection_examples.items()):
        console.print(f"refused ({summary.rejected[rule]}x): {message}")

    audited = max(summary.placed, key=lambda order_id: service.get_order(order_id).version)
    console.print(history_table(service, audited))
    console.print(order_table(service.get_order(audited, version=1)))
    console.print(order_table(service.get_order(audited)))
    demo_views(service, views, statuses)


@app.command()
def show(
    context: typer.Context,
    order_id: UUID,
    version: Annotated[int | None, typer.Option(help="State as of this version")] = None,
    as_of: Annotated[datetime | None, typer.Option(help="State as of this UTC time")] = None,
) -> None:
    """Show an order's state, now or as of a version or a time."""
    try:
        console.print(
            order_table(service_of(context).get_order(order_id, version=version, as_of=as_of))
        )
    except OrderError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error


@app.command()
def history(context: typer.Context, order_id: UUID) -> None:
    """List every event of an order with who/why (correlation ids)."""
    try:
        console.print(history_table(service_of(context), order_id))
    except OrderError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error


def main() -> None:
    """Entry point of the ``orders`` console script."""
    app()
