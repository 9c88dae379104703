"""``orders parked list|retry|skip``: the orders a relay or a projection runner parked.

A worker parks an order when one of its events cannot be published (a relay) or projected (a
runner); the order's later events wait behind it while every other order flows on
(:mod:`projections.parking`). A worker is named as ``orders parked list`` shows it: a relay by
its destination (``relay:in-process``, ``relay:eventbridge:<bus>``), a runner by its projection
(``order_summary``; the live generation). ``retry`` (after a fix) and ``skip`` are recorded,
then applied at once when no other relay holds the lease (a running relay applies them in its
next window; a runner's are applied at once, in one commit with the rows).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console

from adapters.bootstrap.clients import events_client
from adapters.bootstrap.consumers import local_dead_letters, local_handlers
from adapters.bootstrap.relay import (
    IN_PROCESS,
    eventbridge_destination,
    parking_for,
    relay_for,
    relay_name,
)
from adapters.cli.context import Backends, backends, runtime_of
from adapters.cli.errors import CommandError
from adapters.cli.output import emit, wants_json
from adapters.cli.relay import BusName
from adapters.eventbridge.bus import EventBridgePublisher
from adapters.local.bus import InProcessBus
from adapters.relay.ports import Publisher
from adapters.settings import Settings
from projections.parking import NotParkedError, ParkedOrder, ParkingLot, Request
from projections.runtime import Runner
from projections.views import PROJECTIONS, projection_named

parked_app = typer.Typer(
    no_args_is_help=True, help="Orders a relay or a projection parked: list, retry, skip."
)
console = Console(width=None if sys.stdout.isatty() else 160)

RELAY = relay_name("")
EVENTBRIDGE = eventbridge_destination("")


@dataclass
class Worker:
    """A relay (``runner`` None) or a runner, named ``name``, with its parking lot."""

    name: str
    lot: ParkingLot
    runner: Runner | None = None


def worker_named(chosen: Backends, name: str) -> Worker:
    """The worker ``name`` (a relay name or a projection name) on the chosen backend."""
    service = chosen.service
    if name.startswith(RELAY):
        _publisher(chosen, name)
        return Worker(name, parking_for(service.factory, name))
    projection = projection_named(name)
    runner = Runner(projection, chosen.store, service.recorder, service.mapper.to_domain_event)
    return Worker(runner.view, runner.parking(), runner)


def _publisher(chosen: Backends, name: str, settings: Settings | None = None) -> Publisher | None:
    """The bus of relay ``name``, built with ``settings`` if given (``ValueError`` if there is
    no such relay)."""
    destination = name.removeprefix(RELAY)
    if destination == IN_PROCESS:
        if settings is None:
            return None
        return InProcessBus(
            local_handlers(chosen.service, chosen.store), local_dead_letters(settings)
        )
    if destination.startswith(EVENTBRIDGE):
        bus = destination.removeprefix(EVENTBRIDGE)
        return EventBridgePublisher(events_client(settings), bus) if settings else None
    msg = f"no relay {name!r}: the relays are relay:{IN_PROCESS} and relay:{EVENTBRIDGE}BUS"
    raise CommandError(msg)


def every_worker(chosen: Backends, bus: str) -> list[Worker]:
    """Both relays of the set-up (in-process, the bus ``bus``) and every projection."""
    names = [relay_name(IN_PROCESS), relay_name(eventbridge_destination(bus)), *PROJECTIONS]
    return [worker_named(chosen, name) for name in names]


def settle(chosen: Backends, worker: Worker, settings: Settings) -> bool:
    """Applies the worker's pending requests now; False if a running relay will instead."""
    if worker.runner is not None:
        worker.runner.settle()
        return True
    publisher = _publisher(chosen, worker.name, settings)
    assert publisher is not None
    return relay_for(chosen.service, publisher, name=worker.name).settle()


def _document(worker: str, parked: ParkedOrder) -> dict[str, object]:
    """A parked order as JSON."""
    return {
        "worker": worker,
        "order_id": parked.order_id,
        "notification_ids": list(parked.notification_ids),
        "reason": parked.reason,
        "parked_at": _time(parked.parked_at),
        "request": parked.request.value if parked.request else None,
        "note": parked.note,
    }


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _ids(ids: tuple[int, ...]) -> str:
    return ", ".join(map(str, ids))


WorkerName = Annotated[
    str,
    typer.Argument(
        help=f"relay:{IN_PROCESS}, relay:eventbridge:BUS or a projection "
        f"({', '.join(PROJECTIONS)})",
        show_default=False,
    ),
]
OrderId = Annotated[UUID, typer.Argument(help="The parked order's id")]


@parked_app.command("list")
def list_parked(
    context: typer.Context,
    worker: Annotated[str | None, typer.Argument(help="Only this worker [default: all]")] = None,
    bus: BusName = None,
    skipped: Annotated[bool, typer.Option(help="Also list the orders skipped")] = False,
) -> None:
    """The parked orders, one block each: which events wait, why, since when, and what an
    operator asked."""
    chosen = backends(context)
    bus = bus or runtime_of(context).settings.bus_name
    workers = [worker_named(chosen, worker)] if worker else every_worker(chosen, bus)
    if wants_json(context):
        emit(context, {"parked": [_document(w.name, p) for w in workers for p in w.lot.parked()]})
        return
    count = 0
    for each in workers:
        for parked in each.lot.parked():
            count += 1
            asked = parked.request.value if parked.request else "-"
            if parked.note:
                asked += f": {parked.note}"
            console.print(
                f"{each.name}: order {parked.order_id}",
                f"  events (notification ids): {_ids(parked.notification_ids)}",
                f"  why: {parked.reason}",
                f"  since: {_time(parked.parked_at)}",
                f"  asked: {asked}",
                sep="\n",
                overflow="fold",
                highlight=False,
                markup=False,
            )
    if not count:
        console.print("no parked orders")
    if not skipped:
        return
    for each in workers:
        for record in each.lot.skipped():
            console.print(
                f"{each.name}: order {record.order_id} skipped",
                f"  events (notification ids): {_ids(record.notification_ids)}",
                f"  why parked: {record.reason}",
                f"  skipped: {_time(record.skipped_at)}: {record.note}",
                sep="\n",
                overflow="fold",
                highlight=False,
                markup=False,
            )


def _ask(
    context: typer.Context, worker: str, order_id: UUID, request: Request, note: str | None
) -> None:
    chosen = backends(context)
    chosen_worker = worker_named(chosen, worker)
    try:
        chosen_worker.lot.ask(str(order_id), request, note)
    except NotParkedError as error:
        raise CommandError(str(error)) from None
    if not settle(chosen, chosen_worker, runtime_of(context).settings):
        typer.echo(
            f"{worker}: {request.value} of order {order_id} recorded; the relay holding "
            "the lease applies it in its next window"
        )
        return
    left = {p.order_id: p for p in chosen_worker.lot.parked()}.get(str(order_id))
    if left is None:
        done = "published" if worker.startswith(RELAY) else "applied"
        outcome = "skipped" if request is Request.SKIP else f"{done} and released"
        typer.echo(f"{worker}: order {order_id} {outcome}")
        return
    typer.echo(
        f"{worker}: order {order_id} is still parked ({_ids(left.notification_ids)}): "
        f"{left.reason}",
        err=True,
    )
    raise typer.Exit(1)


@parked_app.command()
def retry(context: typer.Context, worker: WorkerName, order_id: OrderId) -> None:
    """After a fix: publish (or apply) the order's parked events once, in order, and release
    it."""
    _ask(context, worker, order_id, Request.RETRY, None)


@parked_app.command()
def skip(
    context: typer.Context,
    worker: WorkerName,
    order_id: OrderId,
    *,
    reason: Annotated[str, typer.Option(help="Why the parked events are dropped (recorded)")],
) -> None:
    """Drop the order's parked events, recording why; its later events flow again."""
    _ask(context, worker, order_id, Request.SKIP, reason)
