"""``orders relay run|status`` and ``orders bus setup``: the outbox relay and its bus.

Registered in ``adapters.cli``; the backend (where the log is) comes from the global options.
AWS endpoints and credentials come from the standard variables (``AWS_ENDPOINT_URL_EVENTS``,
``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL`` for moto, ``AWS_DEFAULT_REGION`` ...).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any

import boto3
import typer
from botocore.exceptions import BotoCoreError, ClientError
from eventsourcing.persistence import PersistenceError
from rich.console import Console
from rich.table import Table

from adapters.cli import settings_of
from adapters.cloudwatch import CloudWatchMetrics
from adapters.eventbridge import EventBridgePublisher, set_up_bus
from adapters.inprocess import Handler, InProcessBus
from adapters.relay import Publisher, RelayError, RelaySettings
from adapters.relay_setup import RELAY_NAME, relay_for, status_of
from adapters.wiring import BusWiring
from orders import OrderError

relay_app = typer.Typer(no_args_is_help=True, help="The outbox relay: the log to the bus.")
bus_app = typer.Typer(no_args_is_help=True, help="The event bus, its rules and queues.")
console = Console(width=None if sys.stdout.isatty() else 160)

BusName = Annotated[str, typer.Option("--bus", envvar="ORDERS_BUS_NAME", help="The event bus")]


class Target(StrEnum):
    """Where the relay publishes."""

    EVENTBRIDGE = "eventbridge"
    IN_PROCESS = "in-process"


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turns an operational error into one line on stderr and exit status 1."""
    try:
        yield
    except (RelayError, OrderError, PersistenceError, ClientError, BotoCoreError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


def local_handlers() -> Mapping[str, Handler]:
    """The consumers the in-process bus delivers to, by route (none are registered yet)."""
    return {}


@bus_app.command("setup")
def bus_setup(
    bus: BusName = "orders",
    prefix: Annotated[str, typer.Option(help="Prefix of rule and queue names")] = "orders",
) -> None:
    """Create (or bring up to date) the bus, its rules, queues and dead-letter queues."""
    with one_line_errors():
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
    metrics: Annotated[bool, typer.Option(help="Report figures to CloudWatch")] = False,
) -> None:
    """Publish the log until SIGTERM or Ctrl-C (one relay at a time holds the lease)."""
    with one_line_errors():
        service = settings_of(context).service()
        publisher: Publisher
        if to is Target.EVENTBRIDGE:
            publisher = EventBridgePublisher(boto3.client("events"), bus)
        else:
            publisher = InProcessBus(local_handlers())
        reporter = (
            CloudWatchMetrics(boto3.client("cloudwatch"), {"Relay": RELAY_NAME})
            if metrics
            else None
        )
        settings = RelaySettings(
            window=window, lease_seconds=lease_seconds, poll_seconds=poll_seconds
        )
        relay = relay_for(service, publisher, settings=settings, metrics=reporter)

        def stop(*_: Any) -> None:
            relay.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        typer.echo(f"relay {relay.owner}: publishing to {to.value} {bus}", err=True)
        try:
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
    with one_line_errors():
        status = status_of(settings_of(context).service())
    table = Table(title="relay", show_header=False)
    table.add_row("position", str(status.position))
    table.add_row("log head", str(status.head))
    table.add_row("lag", str(status.lag))
    holder = status.holder
    table.add_row(
        "lease", f"{holder.owner} until {holder.expires_at:.3f}" if holder else "never held"
    )
    console.print(table)
