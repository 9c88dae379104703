"""The relay on moto's server: what the queues receive, and re-sending only what failed."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from adapters.bootstrap.relay import relay_for
from adapters.cli.demo import run_demo
from orders import OrderService
from schemas import event_id
from tests.relay.support import (
    FAST,
    Bus,
    assert_is_the_stored_event,
    assert_keeps_the_contract,
    relay,
    stored_order_events,
)

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient


def test_every_event_of_a_few_hundred_orders_arrives_once_in_each_orders_version_order(
    bus: Bus, service: OrderService
) -> None:
    """Given 200 orders' journeys in the log When the relay catches up
    Then the projections queue holds each stored event exactly once, as its contract envelope
    with the stored event's id, each order's events in version order; every message validates
    against the schema files and Powertools' EventBridgeModel; the notifications queue holds
    every event too; the position is the log head."""
    run_demo(service, 200, seed=3)
    stored = {str(event_id(event)): event for event in stored_order_events(service)}
    relay_ = relay(service, bus)

    with bus.reader("views", "notifications") as queues:
        published = relay_.run_until_caught_up(deadline=time.time() + 120)

    bodies = queues.bodies["views"]
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
    assert notified == Counter(stored.keys())
    assert relay_.status().lag == 0


class FailFirstTry:
    """Makes ``PutEvents`` fail chosen entries on their first try, as EventBridge reports a
    throttled entry: the server never gets them, and the response lists them as failed with
    ``ThrottlingException`` at their positions. ``calls`` has every call's event ids,
    ``failed`` those failed in each call."""

    def __init__(self, client: EventBridgeClient, event_ids: set[str]) -> None:
        self.pending = set(event_ids)
        self.calls: list[list[str]] = []
        self.failed: list[list[str]] = []
        self._failed: list[int] = []
        client.meta.events.register("provide-client-params.events.PutEvents", self._before)
        client.meta.events.register("after-call.events.PutEvents", self._after)

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        ids = [json.loads(entry["Detail"])["id"] for entry in params["Entries"]]
        self.calls.append(ids)
        chosen = [n for n, event_id in enumerate(ids) if event_id in self.pending]
        self._failed = chosen[: len(ids) - 1]  # a call keeps at least one entry
        self.failed.append([ids[n] for n in self._failed])
        self.pending -= set(self.failed[-1])
        params["Entries"] = [e for n, e in enumerate(params["Entries"]) if n not in self._failed]

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        for position in self._failed:
            failure = {"ErrorCode": "ThrottlingException", "ErrorMessage": "injected"}
            parsed["Entries"].insert(position, failure)
        parsed["FailedEntryCount"] = len(self._failed)


def test_entries_that_failed_are_sent_again_alone_and_arrive_once(
    bus: Bus, service: OrderService
) -> None:
    """Given 40 orders' journeys, every 5th event's entry failing its first PutEvents
    When the relay catches up
    Then each failed entry is sent again in the very next call, with only the other failed
    ones; no accepted entry is sent twice; the queue holds every event exactly once."""
    run_demo(service, 40, seed=5)
    stored = [str(event_id(event)) for event in stored_order_events(service)]
    publisher = bus.publisher()
    injected = FailFirstTry(publisher.client, set(stored[::5]))
    relay_ = relay_for(service, publisher, settings=FAST)

    with bus.reader("views") as queues:
        relay_.run_until_caught_up(deadline=time.time() + 120)

    sent = Counter(event_id for call in injected.calls for event_id in call)
    assert sent == Counter(stored) + Counter(stored[::5])
    for failed, next_call in zip(injected.failed, injected.calls[1:], strict=False):
        if failed:
            assert next_call == failed
    assert sorted(json.loads(body)["id"] for body in queues.bodies["views"]) == sorted(stored)
