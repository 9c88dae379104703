"""Orders -> relay -> EventBridge -> SQS -> the consumers, on moto's server.

The views the consumers build from the queue equal the same projections computed by replaying
the event store; the saga takes payment events the payment service puts on the same bus.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.cli.demo import run_demo
from adapters.consumers.dispatcher import ORDER_DETAIL_TYPES, PAYMENT_DETAIL_TYPES, Dispatcher
from adapters.consumers.saga import PaymentSaga
from adapters.eventbridge.wiring import bus_entry
from adapters.local.views import SQLiteViewStore
from adapters.sqs.worker import SqsConsumer
from orders import OrderLine
from projections.downstream import DownstreamProjection, store_reader
from schemas.payments import payment_succeeded
from tests.consumers.builders import logged_envelopes, replayed, view_contents
from tests.consumers.queues import queue_depth
from tests.consumers.test_sqs_consumer import drain
from tests.relay.support import relay, sqlite_service, wired_bus
from tests.support.moto_server import moto_server


def views_through_the_bus(tmp_path: Path, order_count: int) -> None:
    bus = wired_bus(moto_server())
    service = sqlite_service(tmp_path)
    run_demo(service, order_count, seed=13)
    sqs = bus.server.client("sqs")
    url = bus.resources.queue_urls["views"]
    store = SQLiteViewStore(tmp_path / "views.sqlite3")
    projection = DownstreamProjection(store, store_events=store_reader(service))
    consumer = SqsConsumer(
        sqs, url, Dispatcher([(ORDER_DETAIL_TYPES, projection)]), wait_seconds=0, retry_delay=0
    )

    published = relay(service, bus).run_until_caught_up(deadline=time.time() + 600)
    drain(consumer, sqs, url, limit=10 * published)

    envelopes = logged_envelopes(service)
    assert published == len(envelopes)
    assert view_contents(store, envelopes) == view_contents(replayed(envelopes), envelopes)
    assert queue_depth(sqs, bus.resources.dead_letter_queue_urls["views"]) == 0


def test_orders_through_relay_eventbridge_and_sqs_give_the_replayed_views(
    tmp_path: Path,
) -> None:
    views_through_the_bus(tmp_path, 30)


@pytest.mark.acceptance
def test_a_few_hundred_orders_through_the_bus_give_the_replayed_views(tmp_path: Path) -> None:
    views_through_the_bus(tmp_path, 300)


def test_payment_events_on_the_bus_reach_the_saga_which_confirms_once(tmp_path: Path) -> None:
    bus = wired_bus(moto_server())
    service = sqlite_service(tmp_path)
    lines = [OrderLine(sku="TEE-003", quantity=2, unit_price=Decimal("19.00"))]
    order_id = service.place_order("c-9", lines, "EUR").order_id
    paid = payment_succeeded(order_id, "pay-9", service.get_order(order_id).total, "EUR")
    events = bus.server.client("events")
    for _ in range(2):  # the payment service publishes the same event twice
        response = events.put_events(
            Entries=[{"EventBusName": bus.wiring.bus_name, **bus_entry(paid)}]
        )
        assert response["FailedEntryCount"] == 0
    sqs = bus.server.client("sqs")
    url = bus.resources.queue_urls["saga"]
    consumer = SqsConsumer(
        sqs, url, Dispatcher([(PAYMENT_DETAIL_TYPES, PaymentSaga(service))]), wait_seconds=0
    )
    drain(consumer, sqs, url)
    history = service.history(order_id)
    assert [entry.type_name for entry in history] == ["OrderPlaced", "PaymentConfirmed"]
