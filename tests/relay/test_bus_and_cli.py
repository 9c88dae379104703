"""The bus wiring on moto (queues, dead letters, rules by detail.status) and the CLI commands."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.bootstrap.projections import sqlite_view_store
from adapters.bootstrap.relay import relay_for
from adapters.cli.demo import run_demo
from adapters.cli.main import app
from adapters.cli.relay import lease_text
from adapters.deploy.template import template
from adapters.eventbridge.wiring import BusWiring, Route, input_transformer, matches
from adapters.local.backend import local_env
from adapters.observability.telemetry import (
    DEFAULT_NAMESPACE,
    PARKED_ORDERS,
    CloudWatchMetrics,
    RelayMetrics,
)
from adapters.relay.ports import LeaseTerm
from orders import OrderLine, OrderService
from projections.downstream import DownstreamQueries
from schemas import event_id
from tests.relay.support import FAST, Bus, fresh_moto, stored_order_events, wired_bus
from tests.support.moto_server import MotoServer

runner = CliRunner()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The session's moto server, reset, its endpoint in this process's environment."""
    server = fresh_moto()
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    return server


def test_bus_setup_creates_queues_with_the_values_users_were_given(server: MotoServer) -> None:
    """Given a fresh account When ``orders bus setup`` runs (twice: it is safe to repeat)
    Then each route has a rule on the bus and a queue with visibility 30 s, retention 14 days,
    a dead-letter queue after 3 receives, and a policy letting only its rule send."""
    for _ in range(2):
        result = runner.invoke(app, ["bus", "setup", "--bus", "shop"])
        assert result.exit_code == 0, result.output
    sqs, events = server.client("sqs"), server.client("events")
    for route in BusWiring().routes:
        url = sqs.get_queue_url(QueueName=f"orders-{route.name}")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        dead_letter_arn = sqs.get_queue_attributes(
            QueueUrl=sqs.get_queue_url(QueueName=f"orders-{route.name}-dlq")["QueueUrl"],
            AttributeNames=["QueueArn"],
        )["Attributes"]["QueueArn"]
        rule = events.describe_rule(Name=f"orders-{route.name}", EventBusName="shop")
        assert (attributes["VisibilityTimeout"], attributes["MessageRetentionPeriod"]) == (
            "30",
            str(14 * 24 * 3600),
        )
        assert json.loads(attributes["RedrivePolicy"]) == {
            "deadLetterTargetArn": dead_letter_arn,
            "maxReceiveCount": 3,
        }
        (statement,) = json.loads(attributes["Policy"])["Statement"]
        assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule["Arn"]}}
        assert json.loads(rule["EventPattern"]) == route.pattern
        assert route.name in result.output


def test_a_message_received_three_times_goes_to_the_dead_letter_queue(bus: Bus) -> None:
    """Given a message on a route queue When it is received 3 times and never deleted
    Then the next receive finds it in the dead-letter queue."""
    sqs = bus.server.client("sqs")
    url = bus.resources.queue_urls["views"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    for _ in range(3):
        assert len(sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]) == 1
    assert not sqs.receive_message(QueueUrl=url).get("Messages")
    assert bus.received_dead_letters("views") == ["{}"]


def test_rules_route_by_detail_status_on_the_bus_as_the_in_process_bus_does(
    service: OrderService,
) -> None:
    """Given a route of cancelled orders (by detail.detail.status) When a few orders' events are
    relayed to moto Then that queue receives exactly the OrderCancelled events, and the
    in-process routing picks the same ones."""
    pattern = {"detail": {"detail": {"status": ["cancelled"]}}}
    cancelled = Route("cancelled", pattern, "cancellations")
    bus = wired_bus(fresh_moto(), BusWiring(routes=(cancelled,)))
    run_demo(service, 40, seed=11)
    relay_for(service, bus.publisher(), settings=FAST).run_until_caught_up(time.time() + 60)

    received = [json.loads(body) for body in bus.received("cancelled")]

    assert received
    assert {document["detail-type"] for document in received} == {"OrderCancelled"}
    assert all(matches(cancelled.pattern, {"detail": document}) for document in received)
    assert not matches(cancelled.pattern, {"detail": {"detail": {"status": "pending"}}})


def test_relay_status_shows_position_head_lag_and_holder(
    server: MotoServer, tmp_path: Path
) -> None:
    """Given 2 orders' events stored and not relayed When ``orders relay status`` runs
    Then it shows position 0, the head and the lag; after a relay ran, lag 0."""
    data_dir = str(tmp_path)
    with OrderService(env=local_env(tmp_path)) as service:
        for number in range(2):
            service.place_order(f"c-{number}", [OrderLine("A", 1, Decimal(1))], "EUR")
        bus = wired_bus(server)
        relay = relay_for(service, bus.publisher(), settings=FAST)
        before = runner.invoke(app, ["--data-dir", data_dir, "relay", "status"])
        relay.run_until_caught_up(time.time() + 60)
        after = runner.invoke(app, ["--data-dir", data_dir, "relay", "status"])

    assert before.exit_code == after.exit_code == 0, before.output + after.output
    assert _row(before.output, "position") == "0"
    assert (_row(before.output, "log head"), _row(before.output, "lag")) == ("2", "2")
    assert (_row(after.output, "position"), _row(after.output, "lag")) == ("2", "0")
    assert relay.owner.split(":")[0] in _row(after.output, "lease")


def test_relay_status_shows_the_lease_expiry_in_utc_or_that_none_is_held() -> None:
    """Given a lease term When it is shown Then a live one reads as its holder until a UTC
    time, an expired or released one (expiry 0 after ``--once``) as no lease held."""
    term = LeaseTerm("relay-1:42", datetime(2026, 12, 3, 11, 0, 5, tzinfo=UTC).timestamp())
    assert lease_text(term, now=term.expires_at - 1) == (
        "relay-1:42 until 2026-12-03T11:00:05+00:00"
    )
    assert lease_text(term, now=term.expires_at) == "no lease held (last holder relay-1:42)"
    assert lease_text(LeaseTerm("relay-1:42", 0.0), now=1.0).startswith("no lease held")
    assert lease_text(None, now=1.0) == "never held"


def test_relay_run_on_a_missing_bus_fails_with_one_line(server: MotoServer, tmp_path: Path) -> None:
    """Given events stored and no bus called "nowhere" When ``orders relay run --bus nowhere``
    Then it exits 1 with one line on stderr naming the bus, no traceback."""
    with OrderService(env=local_env(tmp_path)) as service:
        service.place_order("c-1", [OrderLine("A", 1, Decimal(1))], "EUR")
    result = runner.invoke(
        app,
        ["--data-dir", str(tmp_path), "relay", "run", "--bus", "nowhere", "--poll-seconds", "0.1"],
    )
    assert result.exit_code == 1
    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and "nowhere" in error_lines[0], result.stderr
    assert "Traceback" not in result.output


def test_a_parked_order_is_reported_to_cloudwatch(
    server: MotoServer, service: OrderService
) -> None:
    """Given an event over the bus's size limit (a small one: the domain's bounds keep every
    order under today's) When the relay reaching it parks its order (metrics
    to CloudWatch, flushed as a worker does when it stops)
    Then CloudWatch holds a ParkedOrders maximum of 1, the alarm's input."""
    lines = [OrderLine(f"SKU-{n}-" + "x" * 120, 1, Decimal(1)) for n in range(70)]
    service.place_order("customer-big", lines, "EUR")
    cloudwatch = server.client("cloudwatch")
    sink = CloudWatchMetrics(cloudwatch)
    bus = wired_bus(server)
    publisher = bus.publisher(max_bytes=8192)
    relay = relay_for(service, publisher, settings=FAST, metrics=RelayMetrics(sink))

    relay.run_until_caught_up(time.time() + 60)
    sink.flush()

    statistics = cloudwatch.get_metric_statistics(
        Namespace=DEFAULT_NAMESPACE,
        MetricName=PARKED_ORDERS.name,
        StartTime=datetime.now(UTC) - timedelta(minutes=10),
        EndTime=datetime.now(UTC) + timedelta(minutes=10),
        Period=60,
        Statistics=["Maximum"],
    )
    assert max(point["Maximum"] for point in statistics["Datapoints"]) == 1


def _row(output: str, name: str) -> str:
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if cells[0] == name:
            return cells[1]
    raise AssertionError(f"no row {name!r} in:\n{output}")


def test_relay_run_in_process_feeds_the_local_downstream_views(tmp_path: Path) -> None:
    """Given a demo's orders on the local backend When ``orders relay run --to in-process
    --once`` runs Then it stops at the log head, and every order shows in its customer's
    downstream history with the status the store has for it."""
    data_dir = ["--data-dir", str(tmp_path)]
    assert runner.invoke(app, [*data_dir, "demo", "--orders", "15"]).exit_code == 0

    result = runner.invoke(app, [*data_dir, "relay", "run", "--to", "in-process", "--once"])

    with OrderService(env=local_env(tmp_path)) as service:
        head = service.recorder.max_notification_id()
        orders = {
            event.originator_id: event.customer_id
            for event in stored_order_events(service)
            if event.originator_version == 1
        }
        expected = {str(order_id): service.get_order(order_id).status for order_id in orders}
    assert result.exit_code == 0, result.output
    assert f"stopped at position {head}" in result.stderr
    queries = DownstreamQueries(sqlite_view_store(tmp_path))
    shown = {
        row.data["orderId"]: row.data["status"]
        for customer in set(orders.values())
        for row in queries.customer_orders(customer, limit=100).rows
    }
    assert shown == expected


def test_the_template_wires_each_route_as_bus_setup_does() -> None:
    """Given the CloudFormation template When its rules are read
    Then each has the wiring's pattern and a target whose input transformer is the wiring's,
    its template (account and region substituted by CloudFormation) a JSON envelope."""
    resources = template()["Resources"]
    rules = {
        r["Properties"]["Name"]["Fn::Sub"].rsplit("-", 1)[-1]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Events::Rule" and "EventPattern" in r["Properties"]
    }
    wiring = BusWiring()
    assert set(rules) == {route.name for route in wiring.routes}
    for route in wiring.routes:
        (target,) = rules[route.name]["Targets"]
        transformer = target["InputTransformer"]
        assert rules[route.name]["EventPattern"] == route.pattern
        assert transformer["InputPathsMap"] == input_transformer("a", "r")["InputPathsMap"]
        text = transformer["InputTemplate"]["Fn::Sub"]
        text = text.replace("${AWS::AccountId}", "123456789012").replace("${AWS::Region}", "eu")
        for name in transformer["InputPathsMap"]:
            text = text.replace(f"<{name}>", "{}" if name == "detail" else "x")
        assert json.loads(text)["account"] == "123456789012"


def test_the_demo_then_relay_run_on_a_bus_publishes_every_event(
    server: MotoServer, tmp_path: Path
) -> None:
    """Given ``orders demo`` ran (its relay published the log to the in-process bus)
    When ``orders relay run --once`` publishes to an EventBridge bus
    Then every event of the log reaches the bus's queue (each destination keeps its own
    position); run again, it publishes nothing and says where it stands."""
    bus = wired_bus(server)
    data_dir = ["--data-dir", str(tmp_path)]
    demo = runner.invoke(app, [*data_dir, "demo", "--orders", "20"])
    assert demo.exit_code == 0, demo.output
    with OrderService(env=local_env(tmp_path)) as service:
        head = service.recorder.max_notification_id()
        stored = sorted(str(event_id(event)) for event in stored_order_events(service))

    first = runner.invoke(app, [*data_dir, "relay", "run", "--once", "--bus", "orders"])
    again = runner.invoke(app, [*data_dir, "relay", "run", "--once", "--bus", "orders"])

    assert first.exit_code == again.exit_code == 0, first.output + again.output
    received = sorted(json.loads(body)["id"] for body in bus.received("views"))
    assert head and len(stored) == head and received == stored
    assert f"stopped at position {head} of {head} (lag 0), published {head} events" in (
        first.stderr
    )
    assert f"position {head} of {head} (lag 0), published 0 events" in again.stderr
    assert "nothing to publish: every event up to the log head is published" in again.stderr
