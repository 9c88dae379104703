"""Builds the relay of an ``OrderService`` on whichever backend the service runs on.

The log and the position come from the service's own ``eventsourcing`` factory (its
application recorder and a tracking recorder on the same database); the lease lives there too
(:class:`~adapters.local.backend.SQLiteLease` on SQLite,
:class:`~adapters.dynamodb.lease.DynamoDBLease`
on DynamoDB). The CLI, the Lambda handler and the tests all build relays here.
"""

from __future__ import annotations

from collections.abc import Callable

from eventsourcing.persistence import InfrastructureFactory, Notification
from eventsourcing.sqlite import SQLiteFactory

from adapters.bootstrap.clients import events_client
from adapters.bootstrap.service import order_service
from adapters.dynamodb import DynamoDBFactory
from adapters.dynamodb.lease import DynamoDBLease
from adapters.eventbridge.bus import EventBridgePublisher
from adapters.local.backend import SQLiteLease
from adapters.observability.telemetry import MetricsSink, RelayMetrics
from adapters.relay.outbox import Lease, Metrics, Publisher, Relay, RelaySettings, RelayStatus
from adapters.settings import Settings
from orders import OrderEvent, OrderService
from schemas import Envelope, to_envelope

RELAY_NAME = "eventbridge-relay"
"""The relay's name: its tracking position and its lease are kept under it."""


def relay_for(
    service: OrderService,
    publisher: Publisher,
    *,
    name: str = RELAY_NAME,
    settings: RelaySettings | None = None,
    metrics: Metrics | None = None,
    owner: str | None = None,
) -> Relay:
    """A relay of ``service``'s log to ``publisher``."""
    factory = service.factory
    return Relay(
        service.recorder,
        factory.tracking_recorder(),
        envelope_of(service),
        publisher,
        lease_for(factory, name),
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


def status_of(service: OrderService, name: str = RELAY_NAME) -> RelayStatus:
    """Where the relay ``name`` of ``service``'s log is (no relay needs to run)."""
    return RelayStatus(
        service.factory.tracking_recorder().max_tracking_id(name) or 0,
        service.recorder.max_notification_id() or 0,
        lease_for(service.factory, name).holder(),
    )


def lease_for(factory: InfrastructureFactory, name: str) -> Lease:
    """The lease ``name`` in the database of ``factory`` (SQLite or DynamoDB)."""
    if isinstance(factory, DynamoDBFactory):
        return DynamoDBLease(factory.datastore, name, namespace=f"{factory.env.name.lower()}_lease")
    if isinstance(factory, SQLiteFactory):
        return SQLiteLease(factory.datastore, name)
    msg = f"the relay needs SQLite or DynamoDB to keep its lease, not {type(factory).__name__}"
    raise TypeError(msg)


def envelope_of(service: OrderService) -> Callable[[Notification], Envelope]:
    """Maps a notification of ``service``'s log to its contract envelope."""

    def envelope(notification: Notification) -> Envelope:
        event = service.mapper.to_domain_event(notification)
        if not isinstance(event, OrderEvent):
            msg = f"{type(event).__name__} is not an order event"
            raise TypeError(msg)
        return to_envelope(event)

    return envelope
