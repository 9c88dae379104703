"""``orders downstream ...``: query the views the SQS consumers keep (projections.downstream)."""

from __future__ import annotations

import time
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from adapters.bootstrap.consumers import local_handlers
from adapters.bootstrap.relay import relay_for
from adapters.cli.context import backends
from adapters.cli.projections import operational_errors
from adapters.local.bus import InProcessBus, LocalDeadLetters
from orders import OrderService
from projections.downstream import DownstreamQueries
from projections.ports import ViewStore

downstream_app = typer.Typer(
    no_args_is_help=True, help="Views kept by the SQS consumers: customers, sales, statuses"
)
console = Console(width=160)


def _queries(context: typer.Context) -> DownstreamQueries:
    return DownstreamQueries(backends(context).store)


@downstream_app.command()
def customer(
    context: typer.Context,
    customer_id: str,
    limit: Annotated[int, typer.Option(min=1, help="Orders per page")] = 20,
    after: Annotated[str | None, typer.Option(help="The page token a page printed")] = None,
) -> None:
    """A customer's order history, newest first, and lifetime value per currency."""
    with operational_errors():
        queries = _queries(context)
        page = queries.customer_orders(customer_id, limit=limit, after=after)
        table = Table(title=f"order history of {customer_id}")
        for column in ("order", "placed at", "status", "amount", "version"):
            table.add_column(column)
        for row in page.rows:
            data = row.data
            table.add_row(
                data["orderId"],
                data["placedAt"],
                data["status"],
                f"{data['amount']} {data['currency']}",
                str(data["version"]),
            )
        console.print(table)
        if page.next_key:
            console.print(f"next page: --after {page.next_key}")
        for currency, totals in sorted(queries.lifetime_value(customer_id).items()):
            console.print(
                f"lifetime value {currency}: {totals.amount} over {totals.orders} paid order(s)"
            )


@downstream_app.command()
def sales(
    context: typer.Context,
    currency: str,
    first: Annotated[date | None, typer.Option("--from", help="First UTC day")] = None,
    last: Annotated[date | None, typer.Option("--to", help="Last UTC day")] = None,
) -> None:
    """Orders paid per UTC day in CURRENCY (and not cancelled since): count and total."""
    with operational_errors():
        table = Table(title=f"daily sales in {currency}")
        for column in ("day", "orders", "total"):
            table.add_column(column)
        for day, totals in _queries(context).daily_sales(currency, first, last).items():
            table.add_row(day.isoformat(), str(totals.orders), str(totals.amount))
        console.print(table)


@downstream_app.command("by-status")
def by_status(
    context: typer.Context,
    status: str,
    day: Annotated[date, typer.Argument(help="The UTC day the orders were placed")],
    limit: Annotated[int, typer.Option(min=1, help="Orders per page")] = 50,
    after: Annotated[str | None, typer.Option(help="The page token a page printed")] = None,
) -> None:
    """Orders now in STATUS that were placed on DAY, in order of placing."""
    with operational_errors():
        page = _queries(context).orders_by_status(status, day, limit=limit, after=after)
        table = Table(title=f"{status} orders placed on {day}")
        for column in ("order", "customer", "placed at", "amount"):
            table.add_column(column)
        for row in page.rows:
            data = row.data
            table.add_row(
                data["orderId"],
                data["customerId"],
                data["placedAt"],
                f"{data['amount']} {data['currency']}",
            )
        console.print(table)
        if page.next_key:
            console.print(f"next page: --after {page.next_key}")


def demo_downstream(
    service: OrderService, store: ViewStore, dead_letters: LocalDeadLetters, customer_id: str
) -> None:
    """The demo's downstream side: the relay hands the log, through the in-process bus, to
    the consumers' handlers (those an SQS consumer runs), then the views they keep are shown."""
    bus = InProcessBus(local_handlers(service, store), dead_letters)
    published = relay_for(service, bus).run_until_caught_up(deadline=time.time() + 600)
    console.print(
        f"relayed {published} events through the in-process bus to the downstream views "
        f"({bus.dead_letters.count()} dead letters)"
    )
    queries = DownstreamQueries(store)
    table = Table(title="downstream view: daily sales in EUR (paid, not cancelled)")
    for column in ("day", "orders", "total"):
        table.add_column(column)
    for day, totals in list(queries.daily_sales("EUR").items())[-5:]:
        table.add_row(day.isoformat(), str(totals.orders), str(totals.amount))
    console.print(table)
    for currency, totals in sorted(queries.lifetime_value(customer_id).items()):
        console.print(
            f"downstream view: lifetime value of {customer_id}: {totals.amount} {currency} "
            f"over {totals.orders} paid order(s)"
        )
