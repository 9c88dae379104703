"""Metrics and logs: what a run emits matches what happened in it."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import boto3
import pytest
from botocore.config import Config

from adapters.bootstrap.projections import report_lag, runners, sqlite_view_store
from adapters.bootstrap.service import metrics_of
from adapters.local.backend import local_env
from adapters.observability.observed import observe_commands, observe_consumer
from adapters.observability.telemetry import (
    ALL_METRICS,
    COMMANDS,
    CONSUMER_FAILURES,
    RELAY_LAG,
    CloudWatchMetrics,
    EmfMetrics,
    RelayMetrics,
    get_logger,
    lambda_json_logs,
)
from adapters.settings import Settings, SettingsError
from orders import (
    OrderConflictError,
    OrderEvent,
    OrderLine,
    OrderNotFoundError,
    OrderRuleError,
    OrderService,
)
from schemas.contract import parse_envelope, to_json
from schemas.mapping import to_envelope
from tests.support.logs import logging_kept
from tests.support.moto_server import moto_server

ORDER = UUID("00000000-0000-4000-8000-0000000000e1")
LINES = [OrderLine("A", 1, Decimal("5.00"))]

EmfTotals = Counter[tuple[str, tuple[tuple[str, str], ...]]]


def emf_totals(stdout: str, namespace: str) -> tuple[EmfTotals, Counter[str]]:
    """Sum of the values and number of values per (metric, dimensions) in EMF lines."""
    sums: EmfTotals = Counter()
    samples: Counter[str] = Counter()
    for line in stdout.splitlines():
        blob = json.loads(line)
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == namespace
        (dimension_names,) = directive["Dimensions"]
        dimensions = tuple((name, blob[name]) for name in dimension_names)
        for metric in directive["Metrics"]:
            values = blob[metric["Name"]]
            values = values if isinstance(values, list) else [values]
            sums[metric["Name"], dimensions] += sum(values)
            samples[metric["Name"]] += len(values)
    return sums, samples


def racing(service: OrderService, rival: OrderService, races: Iterator[bool]) -> None:
    """Before each save of ``service``, if ``races`` says so, ``rival`` changes the order first."""
    insert_events: Callable[..., Any] = service.recorder.insert_events
    quantities = iter(range(50, 100))

    def insert_after_a_rival(*args: Any, **kwargs: Any) -> Any:
        if next(races, False):
            rival.change_lines(ORDER, [OrderLine("A", next(quantities), Decimal("5.00"))])
        return insert_events(*args, **kwargs)

    service.recorder.insert_events = insert_after_a_rival  # type: ignore[method-assign]


def test_a_run_with_injected_conflicts_emits_matching_emf_and_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**local_env(tmp_path), "ORDERS_MAX_ATTEMPTS": "3", "ORDERS_RETRY_BACKOFF_SECONDS": "0"}
    metrics = EmfMetrics("Test/Orders")
    log = io.StringIO()
    service = observe_commands(OrderService(env=env), metrics, get_logger("observed-test", log))
    rival = OrderService(env=env)

    service.place_order("c-1", LINES, "EUR", order_id=ORDER)  # ok, 1 event
    racing(service, rival, iter([True, True]))  # the next command loses two races, then saves
    service.change_lines(ORDER, [OrderLine("A", 2, Decimal("5.00"))])  # ok, 1 event
    racing(service, rival, iter([True] * 3))  # every try of the next command loses
    with pytest.raises(OrderConflictError):
        service.change_lines(ORDER, [OrderLine("A", 3, Decimal("5.00"))])
    with pytest.raises(OrderRuleError):
        service.ship(ORDER)
    service.place_order("c-1", LINES, "EUR", order_id=ORDER)  # a repeat: unchanged
    with pytest.raises(OrderNotFoundError):
        service.complete(UUID(int=7))
    total = service.get_order(ORDER).total
    service.confirm_payment(ORDER, "pay-1", total)  # ok, 1 event
    service.confirm_payment(ORDER, "pay-1", total)  # unchanged
    capsys.readouterr()
    metrics.flush()

    sums, samples = emf_totals(capsys.readouterr().out, "Test/Orders")
    commands = {key: value for key, value in sums.items() if key[0] == "Commands"}
    assert commands == {
        ("Commands", (("Command", "place_order"), ("Outcome", "ok"))): 1,
        ("Commands", (("Command", "change_lines"), ("Outcome", "ok"))): 1,
        ("Commands", (("Command", "change_lines"), ("Outcome", "conflict"))): 1,
        ("Commands", (("Command", "ship"), ("Outcome", "rejected"))): 1,
        ("Commands", (("Command", "place_order"), ("Outcome", "unchanged"))): 1,
        ("Commands", (("Command", "complete"), ("Outcome", "not-found"))): 1,
        ("Commands", (("Command", "confirm_payment"), ("Outcome", "ok"))): 1,
        ("Commands", (("Command", "confirm_payment"), ("Outcome", "unchanged"))): 1,
    }
    assert sums["Conflicts", (("Command", "change_lines"),)] == 2 + 3
    assert sums["Retries", (("Command", "change_lines"),)] == 2 + 2
    assert {key[0] for key in sums} == {"Commands", "Conflicts", "Retries", "SaveLatency"}
    # One latency per save tried: 1 placement, 3 + 3 changes, 1 payment.
    assert samples["SaveLatency"] == 8

    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    saved = [line for line in lines if line["message"] == "event saved"]
    # The service saved versions 1, 4 (after the rival's 2 and 3) and 8 (after 5 to 7).
    assert [line["version"] for line in saved] == [1, 4, 8]
    assert len(service.recorder.select_events(ORDER)) == 8
    for line in saved:
        assert line["order_id"] == str(ORDER)
        assert UUID(line["event_id"])
        assert line["correlation_id"]
        assert line["service"] == "observed-test"


def test_values_with_undeclared_dimensions_are_refused() -> None:
    metrics = EmfMetrics()
    with pytest.raises(ValueError, match="Commands takes dimensions"):
        metrics.count(COMMANDS, Command="ship")
    with pytest.raises(ValueError, match="RelayLag"):
        metrics.gauge(RELAY_LAG, 3, Consumer="x")


def test_every_metric_name_is_unique() -> None:
    assert len({metric.name for metric in ALL_METRICS}) == len(ALL_METRICS)


def test_the_sink_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERS_METRICS", raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "f")
    assert isinstance(metrics_of(Settings.load()), EmfMetrics)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    assert type(metrics_of(Settings.load())).__name__ == "NullMetrics"
    monkeypatch.setenv("ORDERS_METRICS", "statsd")
    with pytest.raises(SettingsError, match="ORDERS_METRICS='statsd': must be one of emf"):
        Settings.load()


@pytest.fixture
def cloudwatch() -> Any:
    server = moto_server()
    server.reset()
    return server.client("cloudwatch")


def test_a_worker_sends_statistic_sets_with_put_metric_data(cloudwatch: Any) -> None:
    now = [0.0]
    metrics = CloudWatchMetrics(cloudwatch, "Test/Workers", interval=60, clock=lambda: now[0])
    for _ in range(3):
        metrics.count(CONSUMER_FAILURES, Consumer="notifications")
    metrics.gauge(RELAY_LAG, 7)
    assert cloudwatch.list_metrics(Namespace="Test/Workers")["Metrics"] == []  # buffered
    now[0] = 61.0
    metrics.gauge(RELAY_LAG, 2)  # a minute on: this value flushes everything

    listed = cloudwatch.list_metrics(Namespace="Test/Workers")["Metrics"]
    assert {(m["MetricName"], tuple(d["Value"] for d in m["Dimensions"])) for m in listed} == {
        ("ConsumerFailures", ("notifications",)),
        ("RelayLag", ()),
    }
    data = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "failures",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "Test/Workers",
                        "MetricName": "ConsumerFailures",
                        "Dimensions": [{"Name": "Consumer", "Value": "notifications"}],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            },
            {
                "Id": "lag",
                "MetricStat": {
                    "Metric": {"Namespace": "Test/Workers", "MetricName": "RelayLag"},
                    "Period": 60,
                    "Stat": "Maximum",
                },
            },
        ],
        StartTime=datetime.now(UTC) - timedelta(minutes=10),
        EndTime=datetime.now(UTC) + timedelta(minutes=10),
    )
    results = {r["Id"]: r["Values"] for r in data["MetricDataResults"]}
    assert sum(results["failures"]) == 3
    assert max(results["lag"]) == 7


def test_projection_lag_is_the_distance_to_the_log_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = OrderService(env=local_env(tmp_path))
    for _ in range(3):
        placed = service.place_order("c-1", LINES, "EUR")
        service.confirm_payment(placed.order_id, "pay", Decimal("5.00"))
    workers = runners(service, sqlite_view_store(tmp_path))
    metrics = EmfMetrics("Test/Projections")
    report_lag(workers, metrics)
    for worker in workers:
        worker.catch_up()
    report_lag(workers, metrics)
    capsys.readouterr()
    metrics.flush()

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    lags = {line["Projection"]: line["ProjectionLag"] for line in lines if "Projection" in line}
    assert len(lags) == len(workers) >= 1
    assert all(values == [6.0, 0.0] for values in lags.values()), lags
    (parked,) = [line["ParkedOrders"] for line in lines if "ParkedOrders" in line]
    assert parked == [0.0] * 2 * len(workers)


def test_consumer_successes_and_failures_count_each_message_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = OrderService(env=local_env(tmp_path))
    placed = service.place_order("c-1", LINES, "EUR")
    service.confirm_payment(placed.order_id, "pay", Decimal("5.00"))
    events = [e for e in service.events.get(placed.order_id) if isinstance(e, OrderEvent)]
    bodies = [to_json(to_envelope(event)) for event in events]
    poison = ["{not json", json.dumps({"id": "x", "detail": {"orderId": "y"}})]
    handled: list[str] = []
    metrics = EmfMetrics("Test/Consumers")
    log = io.StringIO()
    consume = observe_consumer(
        lambda body: handled.append(str(parse_envelope(body).id)),
        metrics,
        get_logger("consumer-test", log),
        "views",
    )
    for body in [*bodies, *poison]:
        with contextlib.suppress(ValueError):
            consume(body)
    capsys.readouterr()
    metrics.flush()

    sums, _ = emf_totals(capsys.readouterr().out, "Test/Consumers")
    assert sums == {
        ("ConsumerSuccesses", (("Consumer", "views"),)): 2,
        ("ConsumerFailures", (("Consumer", "views"),)): 2,
    }
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["message handled"] * 2 + ["message failed"] * 2
    assert [line["event_id"] for line in lines[:2]] == handled
    assert {line["order_id"] for line in lines[:2]} == {str(placed.order_id)}
    assert all(line["correlation_id"] for line in lines[:2])
    assert lines[3]["order_id"] == "y"


def test_the_relay_reports_under_the_names_the_alarms_use(
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics = EmfMetrics("Test/Relay")
    relay_metrics = RelayMetrics(metrics)
    relay_metrics.put({"PublishedEvents": 10, "PublishCalls": 2, "Lag": 5})
    relay_metrics.put({"RetriedEntries": 1, "PublishedEvents": 3, "Lag": 0})
    relay_metrics.put({"Stopped": 1, "ParkedOrders": 2})
    with pytest.raises(ValueError, match="relay metric 'Published'"):
        relay_metrics.put({"Published": 1})
    capsys.readouterr()
    metrics.flush()

    sums, samples = emf_totals(capsys.readouterr().out, "Test/Relay")
    assert sums == {
        ("RelayPublishedEntries", ()): 13,
        ("RelayPutEventsCalls", ()): 2,
        ("RelayFailedEntries", ()): 1,
        ("RelayStopped", ()): 1,
        ("ParkedOrders", ()): 2,
        ("RelayLag", ()): 5,
    }
    assert samples["RelayLag"] == 2


def test_a_failed_put_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = boto3.client(
        "cloudwatch",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )
    metrics = CloudWatchMetrics(unreachable, interval=0)
    metrics.count(CONSUMER_FAILURES, Consumer="views")  # flushes at once, and fails
    assert "1 metric data not sent to CloudWatch" in caplog.text


@pytest.fixture
def our_loggers() -> Iterator[None]:
    with logging_kept():
        yield


@pytest.mark.usefixtures("our_loggers")
def test_in_lambda_our_modules_log_json_lines_and_elsewhere_logging_is_untouched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lambda_json_logs(Settings.load().in_lambda)  # Not in Lambda: nothing changes.
    assert logging.getLogger("adapters").handlers == []

    lambda_json_logs.cache_clear()
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-relay")
    lambda_json_logs(Settings.load().in_lambda)
    # The relay's records go, through its package's logger, to Powertools' JSON handler.
    relay_logger = logging.getLogger("adapters.relay.outbox")
    (handler,) = logging.getLogger("adapters").handlers
    assert handler in get_logger().handlers
    assert relay_logger.getEffectiveLevel() <= logging.WARNING
    record = relay_logger.makeRecord(
        "adapters.relay.outbox",
        logging.WARNING,
        __file__,
        1,
        "lease lost to %s",
        ("relay-2",),
        None,
    )
    line = json.loads(handler.format(record))
    assert (line["message"], line["level"], line["name"]) == (
        "lease lost to relay-2",
        "WARNING",
        "adapters.relay.outbox",
    )
