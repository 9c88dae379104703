"""Builds the relay of an ``OrderService`` on whichever backend the service runs on.

Every destination of the log has a relay of its own, named by :func:`relay_name`: the
in-process bus of the local backend (``relay:in-process``) and each EventBridge bus
(``relay:eventbridge:<bus>``). Each keeps, under its name, its own position (a tracking record
of the service's own ``eventsourcing`` factory), lease and parked orders, all in the event
store's database (:class:`~adapters.local.backend.SQLiteLease` and
:class:`~adapters.local.parking.SQLiteParkingLot` on SQLite,
:class:`~adapters.dynamodb.lease.DynamoDBLease` and
:class:`~adapters.dynamodb.parking.DynamoDBParkingLot` on DynamoDB), so publishing to one
destination never moves another's position. The CLI, the Lambda handler and the tests all
build relays here.
"""

from __future__ import annotations

from collections.abc import Callable

from eventsourcing.persistence import InfrastructureFactory, Notification
from eventsourcing.sqlite import SQLiteFactory

from adapters.bootstrap.clients import events_client
from adapters.bootstrap.service import order_service
from adapters.dynamodb import DynamoDBFactory
from adapters.dynamodb.lease import DynamoDBLease
from adapters.dynamodb.parking import DynamoDBParkingLot
from adapters.eventbridge.bus import EventBridgePublisher
from adapters.local.backend import SQLiteLease
from adapters.local.bus import InProcessBus
from adapters.local.parking import SQLiteParkingLot
from adapters.observability.telemetry import MetricsSink, RelayMetrics
from adapters.relay.outbox import Relay, RelaySettings
from adapters.relay.ports import Lease, Metrics, Publisher, RelayStatus
from adapters.settings import Settings
from orders import OrderEvent, OrderService
from projections.parking import ParkingLot
from schemas import Envelope, to_envelope

IN_PROCESS = "in-process"
"""The destination of the local backend's in-process bus."""


def eventbridge_destination(bus: str) -> str:
    """The destination of the EventBridge bus ``bus``."""
    return f"eventbridge:{bus}"


def relay_name(destination: str) -> str:
    """The name the relay to ``destination`` keeps its position, lease and parking under."""
    return f"relay:{destination}"


def destination_of(publisher: Publisher) -> str:
    """The destination ``publisher`` publishes to."""
    if isinstance(publisher, EventBridgePublisher):
        return eventbridge_destination(publisher.bus_name)
    if isinstance(publisher, InProcessBus):
        return IN_PROCESS
    msg = f"no destination is known for a {type(publisher).__name__}: give the relay a name"
    raise TypeError(msg)


def relay_for(
    service: OrderService,
    publisher: Publisher,
    *,
    name: str | None = None,
    settings: RelaySettings | None = None,
    metrics: Metrics | None = None,
    owner: str | None = None,
) -> Relay:
    """A relay of ``service``'s log to ``publisher``, named after its destination unless
    ``name`` is given."""
    factory = service.factory
    name = name or relay_name(destination_of(publisher))
    return Relay(
        service.recorder,
        factory.tracking_recorder(),
        envelope_of(service),
        publisher,
        lease_for(factory, name),
        parking=parking_for(factory, name),
        name=name,
        owner=owner,
        settings=settings,
        metrics=metrics,
    )


def eventbridge_relay(
    settings: Settings,
    metrics: MetricsSink,
    *,
    service: OrderService | None = None,
    relay_settings: RelaySettings | None = None,
) -> Relay:
    """The relay of the configured service's log to the configured bus, through an
    EventBridge client whose read timeout fits the lease (see ``adapters.bootstrap.clients``)."""
    publisher = EventBridgePublisher(
        events_client(settings), settings.bus_name, max_bytes=settings.bus_max_bytes
    )
    return relay_for(
        service or order_service(settings),
        publisher,
        settings=relay_settings or RelaySettings(lease_seconds=settings.relay_lease_seconds),
        metrics=RelayMetrics(metrics),
    )


def status_of(service: OrderService, destination: str) -> RelayStatus:
    """Where the relay to ``destination`` of ``service``'s log is (no relay needs to run)."""
    name = relay_name(destination)
    return RelayStatus(
        name,
        service.factory.tracking_recorder().max_tracking_id(name) or 0,
        service.recorder.max_notification_id() or 0,
        lease_for(service.factory, name).holder(),
        len(parking_for(service.factory, name).parked()),
    )


def lease_for(factory: InfrastructureFactory, name: str) -> Lease:
    """The lease ``name`` in the database of ``factory`` (SQLite or DynamoDB)."""
    if isinstance(factory, DynamoDBFactory):
        return DynamoDBLease(factory.datastore, name, namespace=f"{factory.env.name.lower()}_lease")
    if isinstance(factory, SQLiteFactory):
        return SQLiteLease(factory.datastore, name)
    raise _unsupported(factory)


def parking_for(factory: InfrastructureFactory, name: str) -> ParkingLot:
    """The parked orders of relay ``name`` in the database of ``factory``."""
    if isinstance(factory, DynamoDBFactory):
        namespace = f"{factory.env.name.lower()}_parking"
        return DynamoDBParkingLot(factory.datastore, name, namespace)
    if isinstance(factory, SQLiteFactory):
        return SQLiteParkingLot(factory.datastore, name)
    raise _unsupported(factory)


def _unsupported(factory: InfrastructureFactory) -> TypeError:
    kind = type(factory).__name__
    return TypeError(f"the relay needs SQLite or DynamoDB to keep its state, not {kind}")


def envelope_of(service: OrderService) -> Callable[[Notification], Envelope]:
    """Maps a notification of ``service``'s log to its contract envelope."""

    def envelope(notification: Notification) -> Envelope:
        event = service.mapper.to_domain_event(notification)
        if not isinstance(event, OrderEvent):
            msg = f"{type(event).__name__} is not an order event"
            raise TypeError(msg)
        return to_envelope(event)

    return envelope
