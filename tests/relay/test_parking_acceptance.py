"""Acceptance: one bad order never stalls everyone, on the local backend and on DynamoDB Local
with a moto bus.

An order whose events the bus refuses (the relay) and a projection raises on (a runner) is
parked with its later events, every other order's events are published and projected, then
``orders parked retry`` (after the fix) publishes and applies the parked events once, in
order, and ``orders parked skip`` drops another order's with its recorded reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock
from uuid import UUID

import pytest
from typer.testing import CliRunner

from adapters.bootstrap.consumers import local_handlers
from adapters.bootstrap.projections import sqlite_view_store
from adapters.bootstrap.relay import relay_for
from adapters.cli.main import app
from adapters.dynamodb import DynamoDBDatastore, DynamoDBFactory
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.eventbridge.bus import EventBridgePublisher
from adapters.local.backend import local_env
from adapters.local.bus import InProcessBus, LocalDeadLetters, RecordHandler
from adapters.relay.outbox import Relay
from adapters.relay.ports import Entry, Publisher, Rejection
from orders import OrderEvent, OrderLine, OrderService
from projections.downstream import DownstreamQueries
from projections.ports import ViewStore
from projections.rows import Rows
from projections.runtime import Runner
from projections.views import PROJECTIONS, OrderSummaryProjection, order_partition
from tests.projections.support import contents, replayed
from tests.relay.support import FAST, fresh_moto, wired_bus
from tests.support.dynamodb_local import DynamoDBLocalTestCase

cli = CliRunner()
GOOD = 3
"""Orders that nothing is wrong with."""


class BuggySummary(OrderSummaryProjection):
    """``order_summary`` with a bug: it fails on every event of the orders in ``buggy``
    (after writing rows, which must not survive)."""

    def __init__(self, buggy: Collection[UUID]) -> None:
        self.buggy = buggy

    def apply(self, event: OrderEvent, rows: Rows) -> None:
        super().apply(event, rows)
        if event.originator_id in self.buggy:
            msg = f"bug in order_summary on order {event.originator_id}"
            raise RuntimeError(msg)


class RefusingBus(InProcessBus):
    """The in-process bus, refusing every entry of the orders in ``refused`` as malformed (as
    EventBridge refuses a malformed entry); ``accepted`` keeps what it took."""

    def __init__(self, handlers: Mapping[str, RecordHandler], refused: Collection[UUID]) -> None:
        super().__init__(handlers, LocalDeadLetters(":memory:"))
        self.refused = refused
        self.accepted: list[Entry] = []

    def send(self, entries: Sequence[Entry]) -> list[Rejection | None]:
        results: list[Rejection | None] = []
        for entry in entries:
            if entry.order_id in self.refused:
                results.append(Rejection("MalformedDetail: Detail is malformed.", permanent=True))
            else:
                self.deliver(entry.envelope)
                self.accepted.append(entry)
                results.append(None)
        return results


def place_and_pay(service: OrderService, count: int) -> list[UUID]:
    """``count`` orders of one line, each placed and paid."""
    placed = []
    for number in range(count):
        order_id = service.place_order(
            f"customer-{number}", [OrderLine("BOOK-001", 1, Decimal("12.50"))], "EUR"
        ).order_id
        service.confirm_payment(order_id, f"pay-{number}", Decimal("12.50"))
        placed.append(order_id)
    return placed


def notification_ids(service: OrderService, order_id: UUID) -> tuple[int, ...]:
    return tuple(
        n.id
        for n in service.recorder.select_notifications(1, 10_000)
        if n.originator_id == order_id
    )


def run_with_faults(
    service: OrderService, publisher: Publisher, store: ViewStore, buggy: Collection[UUID]
) -> tuple[Relay, Runner]:
    """Relays and projects the log (through the faulty bus and the buggy projection), then
    ships every order and does it again."""
    relay = relay_for(service, publisher, settings=FAST)
    runner = Runner(BuggySummary(buggy), store, service.recorder, service.mapper.to_domain_event)
    relay.run_until_caught_up(deadline=float("inf"))
    runner.catch_up()
    for order_id in {n.originator_id for n in service.recorder.select_notifications(1, 1000)}:
        service.ship(UUID(str(order_id)))
    relay.run_until_caught_up(deadline=float("inf"))
    runner.catch_up()
    return relay, runner


def assert_parked(
    service: OrderService, relay: Relay, runner: Runner, bad: UUID, skipped: UUID
) -> None:
    """Both orders parked by both workers, each with its 3 events in log order."""
    for lot in (relay.parking, runner.parking()):
        parked = {p.order_id: p.notification_ids for p in lot.parked()}
        assert parked == {
            str(bad): notification_ids(service, bad),
            str(skipped): notification_ids(service, skipped),
        }
        assert all(len(ids) == 3 for ids in parked.values())
    assert relay.position() == runner.progress().position == service.recorder.max_notification_id()


def operate(arguments: list[str], bad: UUID, skipped: UUID, relay: str, bus: str = "orders") -> str:
    """``orders parked list``, then retry ``bad`` and skip ``skipped`` on both workers (the
    relay named ``relay``, the order_summary runner); the output of ``list --skipped``."""

    def orders(*command: str) -> str:
        result = cli.invoke(app, [*arguments, "parked", *command])
        assert result.exit_code == 0, result.output
        return result.output

    listed = orders("list", "--bus", bus)
    assert str(bad) in listed and str(skipped) in listed and "MalformedDetail" in listed
    assert "bug in order_summary" in listed
    assert f"order {bad} published and released" in orders("retry", relay, str(bad))
    assert f"order {bad} applied and released" in orders("retry", "order_summary", str(bad))
    reason = "customer refunded by hand"
    assert f"order {skipped} skipped" in orders("skip", relay, str(skipped), "--reason", reason)
    orders("skip", "order_summary", str(skipped), "--reason", reason)
    return orders("list", "--skipped", "--bus", bus)


def assert_views_after_retry(
    service: OrderService, store: ViewStore, skipped: UUID, summary_row: Any
) -> None:
    """``order_summary`` equals a replay of the log, but for the skipped order (its row is
    absent: its three events were never applied)."""
    decode = service.mapper.to_domain_event
    skipped_partition = order_partition(skipped)

    def without_skipped(rows: dict[tuple[str, str], Any]) -> dict[tuple[str, str], Any]:
        return {key: value for key, value in rows.items() if key[0] != skipped_partition}

    live = contents(store, service.recorder, decode, "order_summary")
    assert without_skipped(live) == without_skipped(
        replayed(service.recorder, decode)["order_summary"]
    )
    assert summary_row(skipped) is None


def test_on_the_local_backend(tmp_path: Path) -> None:
    """Given 2 bad orders among 3 good ones, each placed, paid and shipped, relayed through
    an in-process bus that refuses the bad ones' entries and projected by an order_summary
    that fails on them
    Then both are parked by both workers with their 3 events in order, every good order's
    events are delivered and projected, and both positions are at the head; ``orders parked
    retry`` delivers and applies the first's events, ``skip`` drops the other's, its reason
    listed; a later event of the skipped order flows as usual."""
    with OrderService(env=local_env(tmp_path)) as service:
        store = sqlite_view_store(tmp_path)
        bad, skipped, *good = place_and_pay(service, 2 + GOOD)
        bus = RefusingBus(local_handlers(service, store), {bad, skipped})
        relay, runner = run_with_faults(service, bus, store, {bad, skipped})

        assert_parked(service, relay, runner, bad, skipped)
        assert sorted(e.notification_id for e in bus.accepted) == sorted(
            n for order in good for n in notification_ids(service, order)
        )
        listed = operate(["--data-dir", str(tmp_path)], bad, skipped, "relay:in-process")

        assert "customer refunded by hand" in listed
        downstream = DownstreamQueries(store)
        (row,) = downstream.customer_orders("customer-0").rows
        assert row.data["version"] == 3  # the retried order's 3 events reached the views
        assert downstream.customer_orders("customer-1").rows == []  # skipped: never published
        view = runner.view

        def summary_row(order_id: UUID) -> object:
            return store.get(view, order_partition(order_id), "summary")

        assert_views_after_retry(service, store, skipped, summary_row)
        assert relay.parking.parked() == runner.parking().parked() == []
        service.complete(skipped)
        relay_for(
            service, InProcessBus(local_handlers(service, store), LocalDeadLetters(":memory:"))
        ).run_until_caught_up(deadline=float("inf"))
        fixed = PROJECTIONS["order_summary"]
        Runner(fixed, store, service.recorder, service.mapper.to_domain_event).catch_up()
        assert downstream.customer_orders("customer-1").rows[0].data["version"] == 4
        assert summary_row(skipped).version == 4  # type: ignore[attr-defined]


@pytest.mark.dynamodb
class TestOnDynamoDB(DynamoDBLocalTestCase):
    def test_on_dynamodb_local_with_a_moto_bus(self) -> None:
        """Given the same orders on DynamoDB Local, relayed to an EventBridge bus on moto that
        refuses the bad ones' entries as malformed (their Detail corrupted below our code)
        and projected into DynamoDB views by the buggy order_summary
        Then the same: both orders parked, the good ones' events in the queue and the views;
        ``orders --backend dynamodb parked retry`` sends the first's 3 events to the queue
        exactly once, in version order, and applies them; ``skip`` records its reason."""
        server = fresh_moto()
        bus = wired_bus(server)
        views_table = f"{self.table_name}-views"
        DynamoDBViewStore(DynamoDBDatastore(self.client, views_table)).create_table_if_missing()
        self.addCleanup(self.server.delete_table, views_table)
        with mock.patch.dict(os.environ, {**self.dynamodb_env(), **server.env()}):
            service = OrderService(env=self.dynamodb_env())
            self.addCleanup(service.close)
            store = DynamoDBViewStore(DynamoDBDatastore(self.client, views_table))
            bad, skipped, *good = place_and_pay(service, 2 + GOOD)
            events = server.client("events")
            corrupted = {str(bad), str(skipped)}

            def corrupt(params: dict[str, Any], **_: Any) -> None:
                for entry in params["Entries"]:
                    # The entry's Detail is the whole contract envelope (one bus shape).
                    if json.loads(entry["Detail"])["detail"]["orderId"] in corrupted:
                        entry["Detail"] = "{not json"

            events.meta.events.register("provide-client-params.events.PutEvents", corrupt)
            publisher = EventBridgePublisher(events, bus.wiring.bus_name)
            relay, runner = run_with_faults(service, publisher, store, {bad, skipped})

            assert_parked(service, relay, runner, bad, skipped)
            first = [json.loads(body)["detail"] for body in bus.received("views")]
            self.assertEqual(
                sorted((d["orderId"], d["streamVersion"]) for d in first),
                sorted((str(order), v) for order in good for v in (1, 2, 3)),
            )
            arguments = ["--backend", "dynamodb", "--table", self.table_name]
            relay_name = f"relay:eventbridge:{bus.wiring.bus_name}"
            listed = operate(arguments, bad, skipped, relay_name, bus.wiring.bus_name)

            self.assertIn("customer refunded by hand", listed)
            after = [json.loads(body)["detail"] for body in bus.received("views")]
            self.assertEqual(
                [(d["orderId"], d["streamVersion"]) for d in after],
                [(str(bad), 1), (str(bad), 2), (str(bad), 3)],
            )
            view = runner.view

            def summary_row(order_id: UUID) -> object:
                return store.get(view, order_partition(order_id), "summary")

            assert_views_after_retry(service, store, skipped, summary_row)
            self.assertEqual(relay.parking.parked(), [])

    def test_the_position_never_passes_a_parked_event_whose_record_failed(self) -> None:
        """Given the bus refusing one order's entries and DynamoDB failing the write of its
        parking record (a fault below our code) When the relay runs
        Then it fails without recording a position past the parked event; run again with
        the table healthy, it parks the order with all its events and reaches the head, the
        other orders' events published (again: at least once, never lost)."""
        service = OrderService(env=self.dynamodb_env())
        self.addCleanup(service.close)
        bad, *good = place_and_pay(service, 1 + GOOD)
        failing = [True]

        class Response:
            status_code = 400

        def refuse_parking(params: dict[str, Any], **_: Any) -> object:
            if failing[0] and b"#parked#" in params["body"]:
                error = {"Code": "AccessDeniedException", "Message": "forced"}
                return Response(), {"Error": error, "ResponseMetadata": {}}
            return None

        assert isinstance(service.factory, DynamoDBFactory)
        hooks: Any = service.factory.datastore.client.meta.events  # a hook that answers
        hooks.register("before-call.dynamodb.UpdateItem", refuse_parking)
        bus = RefusingBus({}, {bad})
        relay = relay_for(service, bus, settings=FAST)

        with pytest.raises(Exception, match="forced"):
            relay.run_until_caught_up(deadline=float("inf"))
        self.assertLess(relay.position(), notification_ids(service, bad)[0])
        self.assertEqual(relay.parking.parked(), [])

        failing[0] = False
        relay.run_until_caught_up(deadline=float("inf"))

        (parked,) = relay.parking.parked()
        self.assertEqual(parked.notification_ids, notification_ids(service, bad))
        self.assertEqual(relay.position(), service.recorder.max_notification_id())
        published = {e.notification_id for e in bus.accepted}
        self.assertEqual(published, {n for o in good for n in notification_ids(service, o)})
