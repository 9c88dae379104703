"""The largest order the domain accepts travels every hop: the event store and its log on
DynamoDB Local, the relay's entry on EventBridge and the queue (moto), the downstream views and
the order projections on DynamoDB Local. One past any bound is refused by name, writing nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from adapters.consumers.dispatcher import ORDER_DETAIL_TYPES, Dispatcher
from adapters.dynamodb import DynamoDBFactory
from adapters.dynamodb.datastore import DynamoDBDatastore
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.sqs.worker import SqsConsumer
from orders import OrderEvent, OrderLine, OrderRuleError, OrderService
from orders.bounds import (
    MAX_CUSTOMER_ID,
    MAX_LINES,
    MAX_PAYMENT_ID,
    MAX_REASON,
    MAX_SKU,
    MAX_TRACE_ID,
)
from projections.downstream import DownstreamProjection, DownstreamQueries, store_reader
from projections.ports import Put, Row, ViewLimitError
from projections.runtime import Runner
from projections.views import PROJECTIONS, OrderViews
from schemas import to_envelope
from tests.consumers.queues import queue_depth
from tests.consumers.test_sqs_consumer import drain
from tests.relay.support import fresh_moto, relay, wired_bus
from tests.support.dynamodb_local import dynamodb_local
from tests.unit.test_bounds import BOUNDS, COMMANDS, WIDE

pytestmark = pytest.mark.dynamodb


@pytest.fixture
def service() -> Iterator[OrderService]:
    server = dynamodb_local()
    table = server.new_table()
    yield OrderService(env=server.env(table))
    server.delete_table(table)
    views = f"{table}-views"
    if views in server.client().list_tables()["TableNames"]:
        server.delete_table(views)


def views_store(service: OrderService) -> DynamoDBViewStore:
    factory = service.factory
    assert isinstance(factory, DynamoDBFactory)
    table = f"{factory.datastore.table_name}-views"
    store = DynamoDBViewStore(DynamoDBDatastore(factory.datastore.client, table))
    store.create_table_if_missing()
    return store


def wide(length: int, tag: str = "") -> str:
    return tag + WIDE * (length - len(tag))


def test_the_largest_order_travels_every_hop(service: OrderService) -> None:
    customer = wide(MAX_CUSTOMER_ID)
    correlation, causation = wide(MAX_TRACE_ID), wide(MAX_TRACE_ID, "c")
    price = Decimal("99999999999.99")  # 100 of them: a total of 15 digits, the most there is
    lines = [OrderLine(wide(MAX_SKU, f"{n:03}"), 1, price) for n in range(MAX_LINES)]
    order_id = service.place_order(
        customer, lines, "EUR", correlation_id=correlation, causation_id=causation
    ).order_id
    service.confirm_payment(
        order_id,
        wide(MAX_PAYMENT_ID),
        price * MAX_LINES,
        correlation_id=correlation,
        causation_id=causation,
    )
    service.cancel(order_id, wide(MAX_REASON), correlation_id=correlation, causation_id=causation)

    # The log holds every event whole.
    head = service.recorder.max_notification_id() or 0
    logged = [
        service.mapper.to_domain_event(notification)
        for notification in service.recorder.select_notifications(start=1, limit=head)
    ]
    assert [event.originator_version for event in logged] == [1, 2, 3]
    assert isinstance(logged[0], OrderEvent)
    assert logged[0].customer_id == customer

    # The relay's entries fit the bus and the bus took them all.
    bus = wired_bus(fresh_moto())
    publisher = bus.publisher()
    for notification in service.recorder.select_notifications(start=1, limit=head):
        event = service.mapper.to_domain_event(notification)
        assert isinstance(event, OrderEvent)
        assert publisher.entry(notification, to_envelope(event)).size <= publisher.max_bytes
    assert relay(service, bus).run_until_caught_up(deadline=time.time() + 120) == 3

    # The queue delivers them; the downstream views on DynamoDB apply them.
    sqs = bus.server.client("sqs")
    url = bus.resources.queue_urls["views"]
    store = views_store(service)
    views = DownstreamProjection(store, store_events=store_reader(service))
    consumer = SqsConsumer(
        sqs, url, Dispatcher([(ORDER_DETAIL_TYPES, views)]), wait_seconds=0, retry_delay=0
    )
    drain(consumer, sqs, url, limit=20)
    assert queue_depth(sqs, bus.resources.dead_letter_queue_urls["views"]) == 0
    (row,) = DownstreamQueries(store).customer_orders(customer).rows
    assert row.data["status"] == "cancelled"
    assert row.version == 3

    # The order projections on DynamoDB hold it too, lines and all.
    for projection in PROJECTIONS.values():
        Runner(projection, store, service.recorder, service.mapper.to_domain_event).catch_up()
    summary = OrderViews(store).order(order_id)
    assert summary is not None
    assert len(summary["lines"]) == MAX_LINES
    assert OrderViews(store).customer_orders(customer).orders[0].order_id == order_id


@pytest.mark.parametrize("field", COMMANDS)
def test_one_past_any_bound_is_refused_by_name_and_writes_nothing(
    service: OrderService, field: str
) -> None:
    rule, command = COMMANDS[field]
    order_id = service.place_order("c-1", [OrderLine("A", 1, Decimal("1.00"))], "EUR").order_id
    with pytest.raises(OrderRuleError) as refused:
        command(service, order_id, BOUNDS[field] + 1)
    assert refused.value.rule == rule
    assert service.recorder.max_notification_id() == 1
    assert service.get_order(order_id).version == 1


def test_a_key_dynamodb_refuses_is_a_data_error_not_a_row_conflict(
    service: OrderService,
) -> None:
    store = views_store(service)
    too_long = "x" * 2100  # over DynamoDB's 2,048-byte partition key
    single = [Put(Row("probe", too_long, "k", {"a": 1}))]
    transaction = [*single, Put(Row("probe", "fine", "k", {"a": 1}))]
    for changes in (single, transaction):
        with pytest.raises(ViewLimitError, match="2048 bytes"):
            store.commit(changes)
    assert store.get("probe", "fine", "k") is None
