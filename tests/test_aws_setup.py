"""``orders aws setup`` on a fresh moto + DynamoDB Local; what commands say when it did not run."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from adapters.cli.main import app
from adapters.local.backend import local_env
from orders import OrderLine, OrderService
from tests.support.dynamodb_local import dynamodb_local
from tests.support.moto_server import MotoServer, moto_server

runner = CliRunner()
HINT = "(create it: orders aws setup)"


@pytest.fixture
def aws(tmp_path: Path) -> dict[str, str]:
    """A fresh moto (SQS, EventBridge, SNS) and the session's DynamoDB Local, as a reader's
    environment; the event store table is a new name, not yet created."""
    server: MotoServer = moto_server()
    server.reset()
    return {
        **server.env(),
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local().endpoint_url,
        "ORDERS_DATA_DIR": str(tmp_path),
        "DYNAMODB_TABLE_NAME": f"orders-{uuid.uuid4().hex[:12]}",
        "ORDERS_IDEMPOTENCY_TABLE": f"idempotency-{uuid.uuid4().hex[:12]}",
    }


def orders(env: dict[str, str], *args: str) -> Result:
    unset: dict[str, str | None] = {"ORDERS_BACKEND": None, "DYNAMODB_WRITE_MODE": None}
    return runner.invoke(app, list(args), env={**unset, **env})


def error_line(result: Result) -> str:
    """The one line a failed command printed."""
    assert result.exit_code == 1, result.output
    (line,) = [line for line in result.output.splitlines() if "error" in line]
    return line


def test_aws_setup_makes_every_resource_and_is_safe_to_repeat(aws: dict[str, str]) -> None:
    """Given a fresh endpoint When ``orders aws setup`` runs in the transactional mode, then
    twice in the indexed mode Then the tables, queues, DLQs, rules and topics exist, and the
    event store table got its stream when the indexed mode asked for it."""
    assert orders(aws, "aws", "setup").exit_code == 0
    dynamodb = dynamodb_local().client()
    table = aws["DYNAMODB_TABLE_NAME"]
    described = dynamodb.describe_table(TableName=table)["Table"]
    assert not described.get("StreamSpecification", {}).get("StreamEnabled")
    for _ in range(2):
        result = orders(aws, "aws", "setup", "--write-mode", "indexed")
        assert result.exit_code == 0, result.output
    described = dynamodb.describe_table(TableName=table)["Table"]
    assert described["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_IMAGE",
    }
    assert dynamodb.describe_table(TableName=f"{table}-views")["Table"]["TableStatus"] == "ACTIVE"
    ttl = dynamodb.describe_time_to_live(TableName=aws["ORDERS_IDEMPOTENCY_TABLE"])
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expiration"
    server = moto_server()
    queues = server.client("sqs").list_queues()["QueueUrls"]
    names = {url.rsplit("/", 1)[1] for url in queues}
    for route in ("views", "notifications", "saga"):
        assert {f"orders-{route}", f"orders-{route}-dlq"} <= names
    rules = server.client("events").list_rules(EventBusName="orders")["Rules"]
    assert {rule["Name"] for rule in rules} == {
        "orders-views",
        "orders-notifications",
        "orders-saga",
    }
    topics = server.client("sns").list_topics()["Topics"]
    assert {t["TopicArn"].rsplit(":", 1)[1] for t in topics} == {
        "orders-notifications",
        "orders-alarms",
    }


def test_commands_name_the_missing_resource_and_the_command_that_creates_it(
    aws: dict[str, str], tmp_path: Path
) -> None:
    """Given nothing set up When the AWS-side commands run Then each exits 1 with one line
    naming what is missing and ``orders aws setup``."""
    with OrderService(env=local_env(tmp_path)) as service:
        service.place_order("c-1", [OrderLine("A", 1, Decimal(1))], "EUR")

    consume = orders(aws, "consumers", "run", "--queue", "orders-views")
    assert "queue 'orders-views' does not exist " + HINT in error_line(consume)
    listed = orders(aws, "dlq", "list", "orders-views")
    assert "queue 'orders-views' does not exist " + HINT in error_line(listed)
    relayed = orders(aws, "relay", "run", "--once")
    assert "event bus 'orders' does not exist " + HINT in error_line(relayed)
    table = aws["DYNAMODB_TABLE_NAME"]
    placed = orders(
        aws, "--backend", "dynamodb", "place", "--customer", "c-1", "--line", "A:1:1.00"
    )
    assert repr(table) in error_line(placed) and "orders aws setup" in error_line(placed)

    assert orders(aws, "bus", "setup").exit_code == 0  # the queues, not the tables or topics
    topic = "arn:aws:sns:us-east-1:123456789012:orders-notifications"
    notify = ["consumers", "run", "--queue", "orders-notifications", "--consumer", "notifications"]
    no_table = orders(aws, *notify, "--topic-arn", topic)
    idempotency = aws["ORDERS_IDEMPOTENCY_TABLE"]
    assert f"idempotency table {idempotency!r} does not exist {HINT}" in error_line(no_table)
    dynamodb = dynamodb_local().client()
    assert idempotency not in dynamodb.list_tables()["TableNames"]


def test_the_indexer_on_a_table_without_its_stream_says_how_to_turn_it_on(
    aws: dict[str, str],
) -> None:
    """Given the tables set up for the transactional mode When the indexed mode's indexer
    looks at the store Then it exits 1 with one line naming the table and the command."""
    assert orders(aws, "aws", "setup").exit_code == 0
    indexed = {**aws, "DYNAMODB_WRITE_MODE": "indexed"}
    result = runner.invoke(app, ["--backend", "dynamodb", "indexer", "status"], env=indexed)
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert repr(aws["DYNAMODB_TABLE_NAME"]) in line and "has no stream" in line
    assert "(turn it on: orders aws setup --write-mode indexed)" in line
