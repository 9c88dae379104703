"""``orders downstream ...``: query the views the SQS consumers keep (projections.downstream)."""

from __future__ import annotations

import time
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from adapters.bootstrap.consumers import local_handlers
from adapters.bootstrap.relay import relay_for
from adapters.cli.context import backends, runtime_of
from adapters.cli.output import console, emit, note, plain, printable, wants_json
from adapters.local.bus import InProcessBus, LocalDeadLetters
from orders import OrderService
from projections.downstream import DownstreamQueries
from projections.ports import ViewStore

if TYPE_CHECKING:
    from rich.console import Console

downstream_app = typer.Typer(
    no_args_is_help=True, help="Views kept by the SQS consumers: customers, sales, statuses"
)


def _queries(context: typer.Context) -> DownstreamQueries:
    """The downstream views; a local data directory must exist (the consumers may have written
    views only), and none is created."""
    runtime = runtime_of(context)
    if runtime.local:
        runtime.check_data_dir(create=False)
    return DownstreamQueries(backends(context).store)


@downstream_app.command()
def customer(
    context: typer.Context,
    customer_id: str,
    limit: Annotated[int, typer.Option(min=1, help="Orders per page")] = 20,
    after: Annotated[str | None, typer.Option(help="The page token a page printed")] = None,
) -> None:
    """A customer's order history, newest first, and lifetime value per currency."""
    queries = _queries(context)
    page = queries.customer_orders(customer_id, limit=limit, after=after)
    lifetime = sorted(queries.lifetime_value(customer_id).items())
    if wants_json(context):
        emit(
            context,
            {
                "customer_id": customer_id,
                "orders": [plain(dict(row.data)) for row in page.rows],
                "next": page.next_key,
                "lifetime_value": {
                    currency: {"amount": str(t.amount), "orders": t.orders}
                    for currency, t in lifetime
                },
            },
        )
        return
    table = Table(title=f"order history of {printable(customer_id)}")
    for column in ("order", "placed at", "status", "amount", "version"):
        table.add_column(column, overflow="fold")
    for row in page.rows:
        data = row.data
        table.add_row(
            data["orderId"],
            data["placedAt"],
            data["status"],
            f"{data['amount']} {data['currency']}",
            str(data["version"]),
        )
    console().print(table)
    if page.next_key:
        note(f"next page: --after {page.next_key}")
    for currency, totals in lifetime:
        typer.echo(f"lifetime value {currency}: {totals.amount} over {totals.orders} paid order(s)")


@downstream_app.command()
def sales(
    context: typer.Context,
    currency: str,
    first: Annotated[date | None, typer.Option("--from", help="First UTC day")] = None,
    last: Annotated[date | None, typer.Option("--to", help="Last UTC day")] = None,
) -> None:
    """Orders paid per UTC day in CURRENCY (and not cancelled since): count and total."""
    days = _queries(context).daily_sales(currency, first, last)
    if wants_json(context):
        rows = [
            {"day": day.isoformat(), "orders": t.orders, "total": str(t.amount)}
            for day, t in days.items()
        ]
        emit(context, {"currency": currency, "days": rows})
        return
    table = Table(title=f"daily sales in {printable(currency)}")
    for column in ("day", "orders", "total"):
        table.add_column(column, overflow="fold")
    for day, totals in days.items():
        table.add_row(day.isoformat(), str(totals.orders), str(totals.amount))
    console().print(table)


@downstream_app.command("by-status")
def by_status(
    context: typer.Context,
    status: str,
    day: Annotated[date, typer.Argument(help="The UTC day the orders were placed")],
    limit: Annotated[int, typer.Option(min=1, help="Orders per page")] = 50,
    after: Annotated[str | None, typer.Option(help="The page token a page printed")] = None,
) -> None:
    """Orders now in STATUS that were placed on DAY, in order of placing."""
    page = _queries(context).orders_by_status(status, day, limit=limit, after=after)
    if wants_json(context):
        rows = [plain(dict(row.data)) for row in page.rows]
        emit(
            context,
            {"status": status, "day": day.isoformat(), "orders": rows, "next": page.next_key},
        )
        return
    table = Table(title=f"{printable(status)} orders placed on {day}")
    for column in ("order", "customer", "placed at", "amount"):
        table.add_column(column, overflow="fold")
    for row in page.rows:
        data = row.data
        table.add_row(
            data["orderId"],
            printable(data["customerId"]),
            data["placedAt"],
            f"{data['amount']} {data['currency']}",
        )
    console().print(table)
    if page.next_key:
        note(f"next page: --after {page.next_key}")


def demo_downstream(
    service: OrderService,
    store: ViewStore,
    dead_letters: LocalDeadLetters,
    customer_id: str,
    out: Console,
) -> dict[str, int]:
    """The demo's downstream side: the relay hands the log, through the in-process bus, to
    the consumers' handlers (those an SQS consumer runs), then the views they keep are shown
    on ``out``. Returns how many events were relayed and dead-lettered."""
    bus = InProcessBus(local_handlers(service, store), dead_letters)
    published = relay_for(service, bus).run_until_caught_up(deadline=time.time() + 600)
    out.print(
        f"relayed {published} events through the in-process bus to the downstream views "
        f"({bus.dead_letters.count()} dead letters)"
    )
    queries = DownstreamQueries(store)
    table = Table(title="downstream view: daily sales in EUR (paid, not cancelled)")
    for column in ("day", "orders", "total"):
        table.add_column(column, overflow="fold")
    for day, totals in list(queries.daily_sales("EUR").items())[-5:]:
        table.add_row(day.isoformat(), str(totals.orders), str(totals.amount))
    out.print(table)
    for currency, totals in sorted(queries.lifetime_value(customer_id).items()):
        out.print(
            f"downstream view: lifetime value of {customer_id}: {totals.amount} {currency} "
            f"over {totals.orders} paid order(s)",
            markup=False,
        )
    return {"relayed": published, "dead_letters": len(dead_letters.list())}
