"""The relay on moto's server: what the queues receive, and re-sending only what failed."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.demo import run_demo
from adapters.wiring import BusWiring
from orders import OrderService
from schemas import event_id
from tests.relay.support import (
    Bus,
    assert_is_the_stored_event,
    assert_keeps_the_contract,
    relay,
    sqlite_service,
    stored_order_events,
    wired_bus,
)
from tests.support.moto_server import moto_server


@pytest.fixture
def bus() -> Bus:
    return wired_bus(moto_server())


@pytest.fixture
def service(tmp_path: Path) -> Iterator[OrderService]:
    with sqlite_service(tmp_path) as service:
        yield service


def test_every_event_of_a_few_hundred_orders_arrives_once_in_each_orders_version_order(
    bus: Bus, service: OrderService
) -> None:
    """Given 200 orders' journeys in the log When the relay catches up
    Then the projections queue holds each stored event exactly once, as its contract envelope
    with the stored event's id, each order's events in version order; every message validates
    against the schema files and Powertools' EventBridgeModel; the notifications queue holds
    exactly the status-changing events; the position is the log head."""
    run_demo(service, 200, seed=3)
    stored = {str(event_id(event)): event for event in stored_order_events(service)}
    relay_ = relay(service, bus)

    with bus.reader("projections", "notifications") as queues:
        published = relay_.run_until_caught_up(deadline=time.time() + 120)

    bodies = queues.bodies["projections"]
    documents = [assert_keeps_the_contract(body) for body in bodies]
    assert published == len(stored) == len(bodies)
    assert Counter(document["id"] for document in documents) == Counter(stored.keys())
    for body, document in zip(bodies, documents, strict=True):
        assert_is_the_stored_event(body, stored[document["id"]])
    versions: dict[str, list[int]] = {}
    for document in documents:
        detail = document["detail"]
        versions.setdefault(detail["orderId"], []).append(detail["streamVersion"])
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
    notified = Counter(json.loads(body)["id"] for body in queues.bodies["notifications"])
    status_changes = BusWiring().route("notifications").pattern["detail-type"]
    assert notified == Counter(i for i, e in stored.items() if e.type_name in status_changes)
    assert relay_.status().lag == 0
