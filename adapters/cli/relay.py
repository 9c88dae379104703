"""``orders relay run|status`` and ``orders bus setup``: the outbox relay and its bus.

Registered in ``adapters.cli.main``; the backend (where the log is) and the metrics sink
(``$ORDERS_METRICS``) come from the global options; errors become one line there.
AWS endpoints and credentials come from the standard variables (``AWS_ENDPOINT_URL_EVENTS``,
``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL`` for moto, ``AWS_DEFAULT_REGION`` ...).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import boto3
import typer
from rich.console import Console
from rich.table import Table

from adapters.bootstrap.relay import relay_for, status_of
from adapters.cli.projections import backends
from adapters.eventbridge.bus import EventBridgePublisher, set_up_bus
from adapters.eventbridge.wiring import BusWiring
from adapters.local.bus import Handler, InProcessBus
from adapters.observability.telemetry import RelayMetrics
from adapters.relay.outbox import LeaseTerm, Publisher, RelaySettings
from orders import OrderService
from projections.downstream import DownstreamProjection, store_reader
from projections.ports import ViewStore

relay_app = typer.Typer(no_args_is_help=True, help="The outbox relay: the log to the bus.")
bus_app = typer.Typer(no_args_is_help=True, help="The event bus, its rules and queues.")
console = Console(width=None if sys.stdout.isatty() else 160)

BusName = Annotated[str, typer.Option("--bus", envvar="ORDERS_EVENT_BUS", help="The event bus")]


class Target(StrEnum):
    """Where the relay publishes."""

    EVENTBRIDGE = "eventbridge"
    IN_PROCESS = "in-process"


def local_handlers(service: OrderService, store: ViewStore) -> Mapping[str, Handler]:
    """The consumers the in-process bus delivers to, by route: the downstream views (in
    ``store``, reading gaps from ``service``). Notifications need SNS and the saga takes
    payment events, which the order log does not hold: they run on the SQS path only."""
    return {"views": DownstreamProjection(store, missing_events=store_reader(service))}


@bus_app.command("setup")
def bus_setup(
    bus: BusName = "orders",
    prefix: Annotated[str, typer.Option(help="Prefix of rule and queue names")] = "orders",
) -> None:
    """Create (or bring up to date) the bus, its rules, queues and dead-letter queues."""
    wiring = BusWiring(bus_name=bus, prefix=prefix)
    resources = set_up_bus(boto3.client("events"), boto3.client("sqs"), wiring)
    table = Table(title=f"bus {resources.bus_arn}")
    for column in ("route", "rule", "queue", "dead-letter queue"):
        table.add_column(column)
    for route in wiring.routes:
        table.add_row(
            route.name,
            resources.rule_arns[route.name],
            resources.queue_urls[route.name],
            resources.dead_letter_queue_urls[route.name],
        )
    console.print(table)


@relay_app.command("run")
def relay_run(  # noqa: PLR0917 - one parameter per option
    context: typer.Context,
    bus: BusName = "orders",
    to: Annotated[Target, typer.Option(help="Where to publish")] = Target.EVENTBRIDGE,
    window: Annotated[int, typer.Option(min=1, help="Events per position update")] = 100,
    lease_seconds: Annotated[float, typer.Option(min=0.1, help="Lease term")] = 30.0,
    poll_seconds: Annotated[float, typer.Option(min=0.01, help="Pause when idle")] = 1.0,
    once: Annotated[bool, typer.Option(help="Stop when the log is published")] = False,
) -> None:
    """Publish the log until SIGTERM or Ctrl-C (one relay at a time holds the lease).

    To in-process: each envelope goes to the local consumers (the downstream views, as
    ``orders downstream`` shows them) instead of EventBridge.
    """
    from adapters.cli.main import settings_of  # noqa: PLC0415 - adapters.cli.main imports this module

    options = settings_of(context)
    publisher: Publisher
    if to is Target.EVENTBRIDGE:
        service = options.service()
        publisher = EventBridgePublisher(boto3.client("events"), bus)
    else:
        local = backends(context)
        service = local.service
        publisher = InProcessBus(local_handlers(service, local.store))
    settings = RelaySettings(window=window, lease_seconds=lease_seconds, poll_seconds=poll_seconds)
    relay = relay_for(service, publisher, settings=settings, metrics=RelayMetrics(options.metrics))

    def stop(*_: Any) -> None:
        relay.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    typer.echo(f"relay {relay.owner}: publishing to {to.value} {bus}", err=True)
    try:
        if once:
            relay.run_until_caught_up(deadline=float("inf"))
        else:
            relay.run()
    finally:
        counters = relay.counters
        typer.echo(
            f"relay {relay.owner}: stopped at position {relay.position()}, published "
            f"{counters.published} events in {counters.calls} calls",
            err=True,
        )


@relay_app.command("status")
def relay_status(context: typer.Context) -> None:
    """Print the relay's position, the log head, the lag and the lease holder."""
    from adapters.cli.main import settings_of  # noqa: PLC0415 - adapters.cli.main imports this module

    status = status_of(settings_of(context).service())
    table = Table(title="relay", show_header=False)
    table.add_row("position", str(status.position))
    table.add_row("log head", str(status.head))
    table.add_row("lag", str(status.lag))
    table.add_row("lease", lease_text(status.holder, time.time()))
    console.print(table)


def lease_text(holder: LeaseTerm | None, now: float) -> str:
    """The lease as an operator reads it: its holder and expiry in UTC, or that none holds it."""
    if holder is None:
        return "never held"
    if holder.expires_at <= now:
        return f"no lease held (last holder {holder.owner})"
    expires = datetime.fromtimestamp(holder.expires_at, UTC).isoformat(timespec="seconds")
    return f"{holder.owner} until {expires}"
