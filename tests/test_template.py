"""The CloudFormation template: generated from the code, lint-clean, least privilege."""

from __future__ import annotations

import copy
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.deploy.template import HANDLERS, TEMPLATE_PATH, WIRING, logical_id, render, template
from projections.views import PROJECTIONS

NO_RESOURCE_LEVEL_PERMISSIONS = frozenset({"dynamodb:ListStreams"})
"""Actions IAM can only grant on ``"*"`` (no specific resource exists for them)."""


@pytest.mark.parametrize("path", sorted(set(HANDLERS.values())))
def test_each_handler_the_template_names_exists(path: str) -> None:
    module, _, name = path.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


def test_the_checked_in_template_is_the_generated_one() -> None:
    assert TEMPLATE_PATH.read_text() == render(), "run: python -m adapters.deploy.template"


def test_cfn_lint_reports_nothing() -> None:
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(TEMPLATE_PATH)],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout == ""


def statements(resources: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"]["Policies"]:
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield name, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcards(resources: dict[str, Any]) -> list[str]:
    """Each IAM statement granting a wildcard action, or a wildcard resource where a specific
    one exists."""
    found = []
    for role, statement in statements(resources):
        actions = as_list(statement["Action"])
        found += [f"{role}: action {a}" for a in actions if "*" in a]
        for resource in as_list(statement["Resource"]):
            wildcard = isinstance(resource, str) and "*" in resource
            if wildcard and not set(actions) <= NO_RESOURCE_LEVEL_PERMISSIONS:
                found.append(f"{role}: resource {resource} for {actions}")
    return found


def test_no_iam_statement_grants_a_wildcard_where_a_specific_one_exists() -> None:
    resources = template()["Resources"]
    assert sum(1 for _ in statements(resources)) >= 20
    assert wildcards(resources) == []


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("dynamodb:*", {"Fn::GetAtt": ["EventsTable", "Arn"]}),
        ("sqs:ReceiveMessage", "*"),
        ("*", "*"),
        ("dynamodb:Query", "arn:aws:dynamodb:*:*:table/*"),
        (["dynamodb:ListStreams", "dynamodb:GetRecords"], "*"),
    ],
)
def test_the_wildcard_check_catches(action: Any, resource: Any) -> None:
    resources = copy.deepcopy(template()["Resources"])
    policy = resources["RelayRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy["Statement"].append({"Effect": "Allow", "Action": action, "Resource": resource})
    assert wildcards(resources)


def test_each_function_may_touch_only_what_it_uses() -> None:
    resources = template()["Resources"]
    granted: dict[str, set[str]] = {}
    for role, statement in statements(resources):
        for action in as_list(statement["Action"]):
            granted.setdefault(role, set()).add(action)
    assert not any(a.startswith(("sqs:", "sns:", "events:")) for a in granted["IndexerRole"])
    assert {a for a in granted["RelayRole"] if not a.startswith(("dynamodb:", "logs:"))} == {
        "events:PutEvents"
    }
    assert "sns:Publish" in granted["NotificationsConsumerRole"]
    assert "sns:Publish" not in granted["ViewsConsumerRole"]
    assert not any(a.startswith("events:") for a in granted["SagaConsumerRole"])
    projection_writes = [
        s for r, s in statements(resources) if r == "ProjectionsRole" and "PutItem" in str(s)
    ]
    assert [s["Resource"] for s in projection_writes] == [[{"Fn::GetAtt": ["ViewsTable", "Arn"]}]]


def test_queues_dead_letter_after_three_receives_and_only_their_rule_sends() -> None:
    resources = template()["Resources"]
    assert len(WIRING.routes) == 3
    for route in WIRING.routes:
        name = logical_id(route)
        queue = resources[f"{name}Queue"]["Properties"]
        timeout = resources[f"{name}ConsumerFunction"]["Properties"]["Timeout"]
        assert queue["VisibilityTimeout"] >= 6 * timeout  # AWS's rule for Lambda consumers
        assert queue["MessageRetentionPeriod"] == 1209600
        assert queue["RedrivePolicy"]["maxReceiveCount"] == 3
        dlq = resources[queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]]
        assert dlq["Properties"]["MessageRetentionPeriod"] == 1209600
        policy = resources[f"{name}QueuePolicy"]["Properties"]["PolicyDocument"]
        (statement,) = policy["Statement"]
        assert statement["Resource"] == {"Fn::GetAtt": [f"{name}Queue", "Arn"]}
        assert statement["Condition"] == {
            "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [f"{name}Rule", "Arn"]}}
        }
        mapping = resources[f"{name}EventSourceMapping"]["Properties"]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        alarm = resources[f"{name}DeadLetterAlarm"]["Properties"]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        duration = resources[f"{name}DurationAlarm"]["Properties"]
        assert (duration["Statistic"], duration["Threshold"]) == ("Average", 1000)


def test_the_template_is_json_with_every_table_recoverable_and_on_demand() -> None:
    loaded = json.loads(TEMPLATE_PATH.read_text())
    tables = [r for r in loaded["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    assert len(tables) == 3
    for table in tables:
        properties = table["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True
        }
    events = loaded["Resources"]["EventsTable"]["Properties"]
    assert events["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"


def test_every_function_has_errors_and_throttles_alarms() -> None:
    resources = template()["Resources"]
    functions = [k for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"]
    assert len(functions) >= 5
    for function in functions:
        for metric in ("Errors", "Throttles"):
            alarm = resources[f"{function.removesuffix('Function')}{metric}Alarm"]["Properties"]
            assert alarm["MetricName"] == metric
            assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
            assert alarm["Threshold"] == 0
            assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_heartbeat_alarms_treat_missing_data_as_breaching() -> None:
    """A relay or projections worker that stops reporting its lag alarms by missing data."""
    resources = template()["Resources"]
    heartbeats = {
        name: alarm["Properties"]
        for name, alarm in resources.items()
        if alarm["Type"] == "AWS::CloudWatch::Alarm"
        and alarm["Properties"]["MetricName"] in {"RelayLag", "ProjectionLag"}
    }
    assert {p["MetricName"] for p in heartbeats.values()} == {"RelayLag", "ProjectionLag"}
    projections = {
        p["Dimensions"][0]["Value"]
        for p in heartbeats.values()
        if p["MetricName"] == "ProjectionLag"
    }
    assert projections == set(PROJECTIONS)
    assert all(p["TreatMissingData"] == "breaching" for p in heartbeats.values())
    stopped = resources["RelayStoppedAlarm"]["Properties"]
    assert (stopped["MetricName"], stopped["Threshold"]) == ("RelayStopped", 1)
