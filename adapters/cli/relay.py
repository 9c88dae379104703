"""``orders relay run|status`` and ``orders bus setup``: the outbox relay and its bus.

Registered in ``adapters.cli.main``; the backend (where the log is) and the metrics sink
(``$ORDERS_METRICS``) come from the global options; errors become one line there.
AWS endpoints and credentials come from the standard variables (``AWS_ENDPOINT_URL_EVENTS``,
``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL`` for moto, ``AWS_DEFAULT_REGION`` ...).
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from adapters.bootstrap.clients import events_client, sqs_client
from adapters.bootstrap.consumers import local_dead_letters, local_handlers
from adapters.bootstrap.relay import (
    IN_PROCESS,
    eventbridge_destination,
    relay_for,
    status_of,
)
from adapters.cli.context import backends, runtime_of
from adapters.cli.output import console, emit, wants_json
from adapters.eventbridge.bus import EventBridgePublisher, set_up_bus
from adapters.eventbridge.wiring import BusWiring
from adapters.local.bus import InProcessBus
from adapters.observability.telemetry import RelayMetrics
from adapters.relay.outbox import Relay, RelaySettings
from adapters.relay.ports import LeaseTerm, Publisher

relay_app = typer.Typer(no_args_is_help=True, help="The outbox relay: the log to the bus.")
bus_app = typer.Typer(no_args_is_help=True, help="The event bus, its rules and queues.")

BusName = Annotated[
    str | None,
    typer.Option("--bus", help="The event bus [default: $ORDERS_BUS_NAME or orders]"),
]


class Target(StrEnum):
    """Where the relay publishes."""

    EVENTBRIDGE = "eventbridge"
    IN_PROCESS = "in-process"


To = Annotated[Target, typer.Option(help="Where to publish (each keeps its own position)")]


def destination(to: Target, bus: str) -> str:
    """The destination ``--to`` and ``--bus`` name."""
    return IN_PROCESS if to is Target.IN_PROCESS else eventbridge_destination(bus)


def where_it_stands(relay: Relay) -> str:
    """One line: what the relay did, where it is, and why it published nothing if it did not."""
    status = relay.status()
    counters = relay.counters
    line = (
        f"relay {relay.name}: stopped at position {status.position} of {status.head} "
        f"(lag {status.lag}), published {counters.published} events in {counters.calls} "
        f"calls, {status.parked} orders parked"
    )
    if counters.published or counters.parked:
        return line
    holder = status.holder
    if status.lag and holder and holder.owner != relay.owner:
        return f"{line}; nothing published: {holder.owner} holds the lease"
    if not status.lag:
        return f"{line}; nothing to publish: every event up to the log head is published"
    return line


@bus_app.command("setup")
def bus_setup(
    context: typer.Context,
    bus: BusName = None,
    prefix: Annotated[str, typer.Option(help="Prefix of rule and queue names")] = "orders",
) -> None:
    """Create (or bring up to date) the bus, its rules, queues and dead-letter queues."""
    settings = runtime_of(context).settings
    wiring = BusWiring(bus_name=bus or settings.bus_name, prefix=prefix)
    resources = set_up_bus(events_client(settings), sqs_client(settings), wiring)
    if wants_json(context):
        routes = {
            route.name: {
                "rule": resources.rule_arns[route.name],
                "queue": resources.queue_urls[route.name],
                "dead_letter_queue": resources.dead_letter_queue_urls[route.name],
            }
            for route in wiring.routes
        }
        emit(context, {"bus": resources.bus_arn, "routes": routes})
        return
    table = Table(title=f"bus {resources.bus_arn}")
    for column in ("route", "rule", "queue", "dead-letter queue"):
        table.add_column(column, overflow="fold")
    for route in wiring.routes:
        table.add_row(
            route.name,
            resources.rule_arns[route.name],
            resources.queue_urls[route.name],
            resources.dead_letter_queue_urls[route.name],
        )
    console().print(table)


@relay_app.command("run")
def relay_run(  # noqa: PLR0917 - one parameter per option
    context: typer.Context,
    bus: BusName = None,
    to: To = Target.EVENTBRIDGE,
    window: Annotated[int, typer.Option(min=1, help="Events per position update")] = 100,
    lease_seconds: Annotated[float, typer.Option(min=0.1, help="Lease term")] = 30.0,
    poll_seconds: Annotated[float, typer.Option(min=0.01, help="Pause when idle")] = 1.0,
    once: Annotated[bool, typer.Option(help="Stop when the log is published")] = False,
) -> None:
    """Publish the log until SIGTERM or Ctrl-C (one relay at a time holds the lease).

    To in-process: each envelope goes to the local consumers (the downstream views, as
    ``orders downstream`` shows them) instead of EventBridge.
    """
    options = runtime_of(context)
    bus = bus or options.settings.bus_name
    publisher: Publisher
    if to is Target.EVENTBRIDGE:
        service = options.service()
        publisher = EventBridgePublisher(
            events_client(options.settings), bus, max_bytes=options.settings.bus_max_bytes
        )
    else:
        local = backends(context)
        service = local.service
        publisher = InProcessBus(
            local_handlers(service, local.store),
            local_dead_letters(options.settings),
            max_bytes=options.settings.bus_max_bytes,
        )
    settings = RelaySettings(window=window, lease_seconds=lease_seconds, poll_seconds=poll_seconds)
    relay = relay_for(service, publisher, settings=settings, metrics=RelayMetrics(options.metrics))

    def stop(*_: Any) -> None:
        relay.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    typer.echo(f"relay {relay.name} ({relay.owner}): from position {relay.position()}", err=True)
    try:
        if once:
            relay.run_until_caught_up(deadline=float("inf"))
        else:
            relay.run()
    finally:
        typer.echo(where_it_stands(relay), err=True)
    if wants_json(context):
        status = relay.status()
        emit(
            context,
            {
                "relay": relay.name,
                "owner": relay.owner,
                "position": status.position,
                "head": status.head,
                "lag": status.lag,
                "published": relay.counters.published,
                "calls": relay.counters.calls,
                "parked": status.parked,
            },
        )


@relay_app.command("status")
def relay_status(context: typer.Context, bus: BusName = None, to: To = Target.EVENTBRIDGE) -> None:
    """Print the relay's position, the log head, the lag, the lease holder and parked orders."""
    runtime = runtime_of(context)
    where = destination(to, bus or runtime.settings.bus_name)
    status = status_of(runtime.existing_service(), where)
    holder = status.holder
    if wants_json(context):
        lease = {"owner": holder.owner, "expires_at": holder.expires_at} if holder else None
        emit(
            context,
            {
                "relay": status.name,
                "position": status.position,
                "head": status.head,
                "lag": status.lag,
                "lease": lease,
                "parked": status.parked,
            },
        )
        return
    table = Table(title=f"relay {status.name}", show_header=False)
    table.add_row("position", str(status.position))
    table.add_row("log head", str(status.head))
    table.add_row("lag", str(status.lag))
    table.add_row("lease", lease_text(status.holder, time.time()))
    table.add_row("parked orders", str(status.parked))
    console().print(table)


def lease_text(holder: LeaseTerm | None, now: float) -> str:
    """The lease as an operator reads it: its holder and expiry in UTC, or that none holds it."""
    if holder is None:
        return "never held"
    if holder.expires_at <= now:
        return f"no lease held (last holder {holder.owner})"
    expires = datetime.fromtimestamp(holder.expires_at, UTC).isoformat(timespec="seconds")
    return f"{holder.owner} until {expires}"
