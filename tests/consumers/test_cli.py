"""``orders consumers run`` (a real process, stopped by SIGTERM) and ``orders dlq``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.bootstrap.projections import sqlite_view_store
from adapters.cli.main import app
from adapters.consumers.dispatcher import Dispatcher
from adapters.local.backend import local_env
from adapters.sqs.worker import SqsConsumer
from orders import OrderLine, OrderService
from projections.downstream import DownstreamProjection, DownstreamQueries
from tests.consumers.builders import demo_service, logged_envelopes, replayed, view_contents
from tests.consumers.queues import queue_depth, queue_with_dead_letters, send_bodies
from tests.consumers.test_saga import succeeded
from tests.consumers.test_sqs_consumer import body
from tests.support.moto_server import MotoServer

LINES = [OrderLine(sku="MUG-002", quantity=1, unit_price=Decimal("8.99"))]


def test_the_worker_process_applies_payments_and_stops_on_sigterm(
    moto: MotoServer, tmp_path: Path
) -> None:
    service = OrderService(env=local_env(tmp_path))
    order_id = service.place_order("c-1", LINES, "EUR").order_id
    sqs = moto.client("sqs")
    url, _ = queue_with_dead_letters(sqs, "payments")
    send_bodies(sqs, url, [body(succeeded(order_id, "8.99"))] * 2)
    command = [str(Path(sys.executable).with_name("orders")), "--data-dir", str(tmp_path)]
    command += ["consumers"]
    command += ["run", "--queue", "payments", "--consumer", "saga", "--wait-seconds", "1"]
    worker = subprocess.Popen(
        command,
        env={**os.environ, **moto.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while queue_depth(sqs, url) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert queue_depth(sqs, url) == 0
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, output
    assert "SIGTERM: stopping after the batch in work" in output
    assert output.rstrip().endswith("stopped")
    assert [entry.type_name for entry in service.history(order_id)] == [
        "OrderPlaced",
        "PaymentConfirmed",
    ]


def test_dlq_list_shows_the_reason_and_redrive_returns_the_message(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "orders-views")
    send_bodies(sqs, url, ['{"detail-type": "OrderTeleported"}'])
    consumer = SqsConsumer(sqs, url, Dispatcher([]), wait_seconds=0, retry_delay=0)
    for _ in range(3):
        consumer.poll()
    assert queue_depth(sqs, dead_letter_url) == 1

    runner = CliRunner()
    listed = runner.invoke(app, ["dlq", "list", "orders-views"])
    assert listed.exit_code == 0, listed.output
    assert "unknown detail-type 'OrderTeleported'" in listed.output
    redriven = runner.invoke(app, ["dlq", "redrive", "orders-views"])
    assert redriven.exit_code == 0, redriven.output
    assert "redrove 1 message(s)" in redriven.output
    assert queue_depth(sqs, dead_letter_url) == 0
    assert queue_depth(sqs, url) == 1


def test_dlq_of_a_missing_queue_is_one_clear_line(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["dlq", "list", "no-such-queue"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "orders: error: queue 'no-such-queue' does not exist (create it: orders aws setup)"
    )


def test_downstream_queries_print_the_views_the_consumers_keep(tmp_path: Path) -> None:
    envelopes = logged_envelopes(demo_service(30))
    store = sqlite_view_store(tmp_path)
    projection = DownstreamProjection(store)
    for envelope in envelopes:
        projection(envelope)
    store.close()
    queries = DownstreamQueries(sqlite_view_store(tmp_path))
    paid = next(e for e in envelopes if e.detail_type == "PaymentConfirmed")
    customer, day = paid.detail.customer_id, paid.time.date()
    runner = CliRunner()

    def orders(*arguments: str) -> str:
        result = runner.invoke(app, ["--data-dir", str(tmp_path), "downstream", *arguments])
        assert result.exit_code == 0, result.output
        return result.output

    value = queries.lifetime_value(customer)["EUR"]
    assert f"lifetime value EUR: {value.amount} over {value.orders} paid" in orders(
        "customer", customer
    )
    sales = queries.daily_sales("EUR")[day]
    assert re.search(rf"{day}\s*│\s*{sales.orders}\s*│\s*{sales.amount}", orders("sales", "EUR"))
    listed = orders("by-status", "processing", day.isoformat(), "--limit", "1000")
    for row in queries.orders_by_status("processing", day, limit=1000).rows:
        assert row.data["orderId"] in listed


def test_the_demo_relays_through_the_in_process_bus_to_the_downstream_views(
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["--data-dir", str(tmp_path), "demo", "--orders", "20"])
    assert first.exit_code == 0, first.output
    relayed = re.search(
        r"relayed (\d+) events through the in-process bus .*\(0 dead letters\)", first.output
    )
    assert relayed, first.output
    service = OrderService(env=local_env(tmp_path))
    assert int(relayed[1]) == service.recorder.max_notification_id()

    second = runner.invoke(app, ["--data-dir", str(tmp_path), "demo", "--orders", "5"])
    assert second.exit_code == 0, second.output
    again = re.search(r"relayed (\d+) events", second.output)
    assert again
    assert int(relayed[1]) + int(again[1]) == service.recorder.max_notification_id()
    envelopes = logged_envelopes(service)
    store = sqlite_view_store(tmp_path)
    assert view_contents(store, envelopes) == view_contents(replayed(envelopes), envelopes)
