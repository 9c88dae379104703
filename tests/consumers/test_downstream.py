"""Downstream views under at-least-once, unordered delivery, on the in-memory view store."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict, deque
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.dynamodb import DynamoDBDatastore
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.local.views import SQLiteViewStore
from orders import OrderService
from projections.downstream import DownstreamProjection, DownstreamQueries, GapError, store_reader
from projections.memory import InMemoryViewStore
from projections.ports import ViewStore
from schemas.contract import Envelope
from tests.consumers.builders import demo_service, logged_envelopes, replayed, view_contents
from tests.support.dynamodb_local import dynamodb_local


@pytest.fixture(scope="module")
def service() -> OrderService:
    return demo_service(200)


@pytest.fixture(scope="module")
def envelopes(service: OrderService) -> list[Envelope]:
    return logged_envelopes(service)


def deliver_with_retries(projection: DownstreamProjection, deliveries: list[Envelope]) -> int:
    """Deliver each envelope, retrying one that fails (a gap) after the rest of the queue;
    the number of retries."""
    queue = deque(deliveries)
    retries = 0
    while queue:
        envelope = queue.popleft()
        try:
            projection(envelope)
        except GapError:
            retries += 1
            queue.append(envelope)
    return retries


@pytest.fixture(params=["memory", "sqlite", pytest.param("dynamodb", marks=pytest.mark.dynamodb)])
def view_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ViewStore]:
    """Each view store: in memory, SQLite, DynamoDB Local (a fresh table)."""
    if request.param == "memory":
        yield InMemoryViewStore()
    elif request.param == "sqlite":
        sqlite = SQLiteViewStore(tmp_path / "views.sqlite3")
        yield sqlite
        sqlite.close()
    else:
        server = dynamodb_local()
        table = f"views-{uuid.uuid4().hex}"  # Created by the store, deleted below.
        store = DynamoDBViewStore(DynamoDBDatastore(server.client(), table))
        store.create_table_if_missing()
        yield store
        server.delete_table(table)


def first_orders(envelopes: list[Envelope], count: int) -> list[Envelope]:
    """The envelopes of the first ``count`` orders of the log (every event of each)."""
    chosen = list(dict.fromkeys(envelope.detail.order_id for envelope in envelopes))[:count]
    return [envelope for envelope in envelopes if envelope.detail.order_id in set(chosen)]


def test_every_message_twice_and_shuffled_gives_the_replayed_views(
    envelopes: list[Envelope], view_store: ViewStore
) -> None:
    if not isinstance(view_store, InMemoryViewStore):
        envelopes = first_orders(envelopes, 60)  # fewer round trips on a real store
    deliveries = envelopes * 2
    random.Random(3).shuffle(deliveries)
    retries = deliver_with_retries(DownstreamProjection(view_store), deliveries)
    assert retries > 0  # the shuffle did put later versions first
    expected = view_contents(replayed(envelopes), envelopes)
    assert view_contents(view_store, envelopes) == expected


def test_a_gap_is_filled_from_the_event_store_without_any_retry(
    service: OrderService, envelopes: list[Envelope]
) -> None:
    deliveries = list(reversed(envelopes)) + envelopes
    store = InMemoryViewStore()
    projection = DownstreamProjection(store, store_events=store_reader(service))
    for envelope in deliveries:
        projection(envelope)
    assert view_contents(store, envelopes) == view_contents(replayed(envelopes), envelopes)


def test_a_gap_without_a_reader_writes_nothing_and_names_the_missing_versions(
    envelopes: list[Envelope],
) -> None:
    second = next(e for e in envelopes if e.detail.stream_version == 2)
    store = InMemoryViewStore()
    with pytest.raises(GapError, match=r"version 2 received but only 0 applied"):
        DownstreamProjection(store)(second)
    assert view_contents(store, envelopes) == {}


def test_the_views_agree_with_the_orders_in_the_store(
    service: OrderService, envelopes: list[Envelope]
) -> None:
    queries = DownstreamQueries(replayed(envelopes))
    order_ids = {envelope.detail.order_id for envelope in envelopes}
    orders = [service.get_order(order_id) for order_id in order_ids]
    value: dict[str, Decimal] = defaultdict(Decimal)
    by_customer: dict[str, list[str]] = defaultdict(list)
    for order in orders:
        by_customer[order.customer_id].append(str(order.id))
        if order.status in ("processing", "completed"):
            value[order.customer_id] += order.total
    for customer, ids in by_customer.items():
        lifetime = queries.lifetime_value(customer)
        assert (lifetime["EUR"].amount if lifetime else Decimal(0)) == value[customer]
        listed = queries.customer_orders(customer, limit=1000).rows
        assert sorted(row.data["orderId"] for row in listed) == sorted(ids)
        placed = [row.data["placedAt"] for row in listed]
        assert placed == sorted(placed, reverse=True)
    sales = queries.daily_sales("EUR")
    assert sum(totals.amount for totals in sales.values()) == sum(value.values())
    day = next(iter(sales))
    cancelled = queries.orders_by_status("cancelled", day, limit=1000).rows
    assert len(cancelled) == sum(1 for order in orders if order.status == "cancelled")
