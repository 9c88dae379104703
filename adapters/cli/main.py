"""The ``orders`` command: the one composition root that builds backends from configuration."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from adapters.cli.aws import aws_app
from adapters.cli.consumers import consumers_app
from adapters.cli.demo import run_demo
from adapters.cli.dlq import dlq_app
from adapters.cli.downstream import demo_downstream, downstream_app
from adapters.cli.errors import OneLineErrors
from adapters.cli.indexer import indexer_app
from adapters.cli.projections import backends, demo_rebuild, demo_views, projections_app
from adapters.cli.relay import bus_app, relay_app
from adapters.dynamodb.indexer import indexing
from adapters.local.backend import EVENTS_FILE_NAME, default_data_dir, local_env
from adapters.observability.observed import observe_commands
from adapters.observability.telemetry import MetricsSink, NullMetrics, get_logger, metrics_from_env
from orders import Order, OrderLine, OrderNotFoundError, OrderRuleError, OrderService

# Errors become one line on stderr (see adapters.cli.errors). Help is plain text: rich markup
# would swallow "[default: ...]" and every other bracket in a help text.
app = typer.Typer(
    name="orders",
    cls=OneLineErrors,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.add_typer(consumers_app, name="consumers")
app.add_typer(dlq_app, name="dlq")
app.add_typer(downstream_app, name="downstream")
app.add_typer(projections_app, name="projections")
app.add_typer(indexer_app, name="indexer")
app.add_typer(relay_app, name="relay")
app.add_typer(bus_app, name="bus")
app.add_typer(aws_app, name="aws")
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
    process environment (see ``adapters.dynamodb``). ``metrics`` is where commands report
    (``$ORDERS_METRICS``, see ``adapters.observability.telemetry``; flushed when the command ends).
    """

    backend: Backend
    data_dir: Path
    table: str
    metrics: MetricsSink = field(default_factory=NullMetrics)

    def service(self) -> OrderService:
        """The ``OrderService`` on the chosen backend, reporting to ``metrics`` if they are on."""
        if self.backend is Backend.DYNAMODB:
            service = OrderService(
                env={"PERSISTENCE_MODULE": "adapters.dynamodb", "DYNAMODB_TABLE_NAME": self.table}
            )
        else:
            service = OrderService(env=local_env(self.data_dir))
        if isinstance(self.metrics, NullMetrics):
            return service
        return observe_commands(service, self.metrics, get_logger())

    def existing_service(self, order_id: UUID) -> OrderService:
        """The service, to act on ``order_id``; on the local backend with nothing stored yet,
        ``OrderNotFoundError`` without creating any file."""
        if self.backend is Backend.LOCAL and not (self.data_dir / EVENTS_FILE_NAME).exists():
            raise OrderNotFoundError(order_id)
        return self.service()


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
    metrics = metrics_from_env()
    context.call_on_close(metrics.flush)
    context.obj = Settings(backend, data_dir or default_data_dir(), table, metrics)


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
        "changed",
    ):
        table.add_column(column)
    for entry, audited in zip(service.history(order_id), service.audit(order_id), strict=True):
        table.add_row(
            str(entry.version),
            entry.type_name,
            entry.timestamp.isoformat(timespec="milliseconds"),
            entry.correlation_id,
            entry.causation_id or "",
            ", ".join(f"{name}={value}" for name, value in entry.details.items()),
            ", ".join(
                f"{name}: {change['before']} -> {change['after']}"
                for name, change in audited.changes.items()
                if name not in {"order_id", "lines"}
            ),
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
    """Place and advance a few hundred orders, audit one, show the views and the downstream
    views, and end by rebuilding a view and verifying it equals the live one."""
    service, views = (chosen := backends(context)).service, chosen.store
    with Progress(console=console, transient=True) as progress, indexing(service.factory):
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
    demo_downstream(service, views, service.get_order(audited).customer_id)
    demo_rebuild(service, views)


def aware_time(value: str) -> datetime:
    """A time with its UTC offset (``2026-11-27T09:00:00+00:00`` or ``...Z``)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        msg = f"{value!r} is not an ISO 8601 time such as 2026-11-27T09:00:00+00:00"
        raise typer.BadParameter(msg) from None
    if parsed.utcoffset() is None:
        msg = f"{value!r} has no UTC offset; add one, as in {value}+00:00"
        raise typer.BadParameter(msg)
    return parsed


def order_line(value: str) -> OrderLine:
    """``SKU:QUANTITY:UNIT_PRICE``, as ``BOOK-001:2:12.50``."""
    sku, _, rest = value.partition(":")
    quantity, _, unit_price = rest.partition(":")
    try:
        return OrderLine(sku, int(quantity), Decimal(unit_price))
    except OrderRuleError as error:
        raise typer.BadParameter(f"{value!r}: {error}") from None
    except (ValueError, InvalidOperation):
        msg = f"{value!r} is not SKU:QUANTITY:UNIT_PRICE, as BOOK-001:2:12.50"
        raise typer.BadParameter(msg) from None


def decimal_amount(value: str) -> Decimal:
    """A decimal amount, as ``25.00``."""
    try:
        return Decimal(value)
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not a decimal amount, as 25.00") from None


OrderId = Annotated[UUID, typer.Argument(help="The order's id (a uuid)")]
CorrelationId = Annotated[
    str | None,
    typer.Option(help="Groups the work of one business transaction [default: a new uuid]"),
]
CausationId = Annotated[str | None, typer.Option(help="The message that caused this command")]


@app.command()
def show(
    context: typer.Context,
    order_id: OrderId,
    version: Annotated[int | None, typer.Option(help="State as of this version")] = None,
    as_of: Annotated[
        datetime | None,
        typer.Option(parser=aware_time, help="State as of this time (with its UTC offset)"),
    ] = None,
) -> None:
    """Show an order's state, now or as of a version or a time."""
    service = settings_of(context).existing_service(order_id)
    console.print(order_table(service.get_order(order_id, version=version, as_of=as_of)))


@app.command()
def history(
    context: typer.Context,
    order_id: OrderId,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document: the order id and its events")
    ] = False,
    as_jsonl: Annotated[
        bool, typer.Option("--jsonl", help="One JSON object per event, one per line")
    ] = False,
) -> None:
    """Every event of an order: who/why (correlation ids), its payload, what it changed."""
    if as_json and as_jsonl:
        raise typer.BadParameter("give --json or --jsonl, not both")
    service = settings_of(context).existing_service(order_id)
    if as_json or as_jsonl:
        entries = [entry.to_json() for entry in service.audit(order_id)]
        if as_jsonl:
            for entry in entries:
                typer.echo(json.dumps(entry))
        else:
            typer.echo(json.dumps({"order_id": str(order_id), "events": entries}, indent=2))
        return
    console.print(history_table(service, order_id))


@app.command()
def place(
    context: typer.Context,
    *,
    customer: Annotated[str, typer.Option(help="The customer's id")],
    line: Annotated[
        list[OrderLine],
        typer.Option(
            parser=order_line,
            metavar="SKU:QUANTITY:UNIT_PRICE",
            help="A line, as BOOK-001:2:12.50 (repeat for more lines)",
        ),
    ],
    currency: Annotated[str, typer.Option(help="ISO 4217 currency code")] = "EUR",
    order_id: Annotated[
        UUID | None,
        typer.Option(
            help="The new order's id, the idempotency key: placing the same order under it "
            "again records nothing [default: a new uuid]"
        ),
    ] = None,
    correlation_id: CorrelationId = None,
    causation_id: CausationId = None,
) -> None:
    """Place an order; prints its id and version."""
    # Check every rule of placing in memory first: a refused order opens no store (and so
    # creates no file on a fresh local backend).
    Order.place(customer, line, currency, order_id=order_id)
    placed = (
        settings_of(context)
        .service()
        .place_order(
            customer,
            line,
            currency,
            order_id=order_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
    )
    typer.echo(f"order {placed.order_id} version {placed.version}")


def drive(context: typer.Context, order_id: UUID, command: Callable[[OrderService], int]) -> None:
    """Run ``command`` on the service holding ``order_id``; print the order's version after it."""
    version = command(settings_of(context).existing_service(order_id))
    typer.echo(f"order {order_id} version {version}")


@app.command()
def pay(
    context: typer.Context,
    *,
    order_id: OrderId,
    payment_id: Annotated[str, typer.Option(help="The payment's id (the same again: no-op)")],
    amount: Annotated[
        Decimal, typer.Option(parser=decimal_amount, help="The amount paid: the order total")
    ],
    correlation_id: CorrelationId = None,
    causation_id: CausationId = None,
) -> None:
    """Confirm the payment of an order; prints its version."""
    trace = {"correlation_id": correlation_id, "causation_id": causation_id}
    drive(context, order_id, lambda s: s.confirm_payment(order_id, payment_id, amount, **trace))


@app.command()
def ship(
    context: typer.Context,
    order_id: OrderId,
    correlation_id: CorrelationId = None,
    causation_id: CausationId = None,
) -> None:
    """Ship a paid order; prints its version."""
    trace = {"correlation_id": correlation_id, "causation_id": causation_id}
    drive(context, order_id, lambda s: s.ship(order_id, **trace))


@app.command()
def complete(
    context: typer.Context,
    order_id: OrderId,
    correlation_id: CorrelationId = None,
    causation_id: CausationId = None,
) -> None:
    """Complete a shipped order; prints its version."""
    trace = {"correlation_id": correlation_id, "causation_id": causation_id}
    drive(context, order_id, lambda s: s.complete(order_id, **trace))


@app.command()
def cancel(
    context: typer.Context,
    order_id: OrderId,
    reason: Annotated[str, typer.Option(help="Why the order is cancelled")],
    correlation_id: CorrelationId = None,
    causation_id: CausationId = None,
) -> None:
    """Cancel an order that has not shipped; prints its version."""
    trace = {"correlation_id": correlation_id, "causation_id": causation_id}
    drive(context, order_id, lambda s: s.cancel(order_id, reason, **trace))


def main() -> None:
    """Entry point of the ``orders`` console script."""
    app()
