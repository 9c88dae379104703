"""The deployable stack, as one CloudFormation template built from the code it deploys.

``python -m adapters.deploy.template`` writes ``template.json`` at the repository's root (checked
in; a test fails when it drifts, another runs ``cfn-lint`` on it). Built here rather than by
hand so the template cannot disagree with the code: the tables' keys come from
``adapters.dynamodb.table``, the metric names and dimensions of the alarms from
``adapters.observability.telemetry``, the bus's routes, queue settings, queue policies and rule
targets from
``adapters.eventbridge.wiring`` (which the relay's set-up reads too).

What it declares, per stage (parameter ``Stage``):

- the event store table (on-demand, point-in-time recovery, its stream for the indexer), the
  view table, the idempotency table of the notifications (TTL on ``expiration``);
- the event bus; per consumer a rule, a queue (visibility 30 s, retention 14 days) with its
  dead-letter queue (after 3 receives, kept 14 days), and a queue policy letting only that rule
  send; the SNS topic of customer notifications and one for alarms;
- Lambda functions: the indexer (the table's stream), the relay and the projection runner
  (each every minute, one at a time), a consumer per queue (batch item failures reported);
  each with its own log group and a role allowed only the actions it uses on the resources it
  uses;
- alarms: a dead-letter queue holding any message, a consumer's average duration above
  1,000 ms, relay lag, indexer lag (ours and the stream's iterator age), relay stopped.

The Lambda code is one package (``CodeBucket``/``CodeKey``: this project and its dependencies).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.dynamodb.table import SortKeyType, table_definition
from adapters.eventbridge.wiring import BusWiring, Route, input_transformer
from adapters.observability.telemetry import (
    INDEXER_LAG,
    PARKED_ORDERS,
    PROJECTION_LAG,
    RELAY_LAG,
    RELAY_STOPPED,
    MetricSpec,
)
from adapters.settings import Backend, Settings, WriteMode
from projections.views import PROJECTIONS

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.json"

CONSUMER_TIMEOUT_SECONDS = 25
QUEUE_VISIBILITY_SECONDS = 6 * CONSUMER_TIMEOUT_SECONDS  # AWS asks for at least 6x the timeout
WORKER_TIMEOUT_SECONDS = 70  # a scheduled worker runs until 10 s before this, every minute
RUNTIME = "python3.12"
RELAY_LEASE_SECONDS = 60  # renewed while it runs; a killed holder is replaced after this

# Read-only and read-write access of the store's code to a table (transactions need each
# action they contain: Put, Update, ConditionCheck).
READ = ("dynamodb:GetItem", "dynamodb:Query")
WRITE = (*READ, "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem")
READ_WRITE_DELETE = (*WRITE, "dynamodb:DeleteItem")

Json = dict[str, Any]


WIRING = BusWiring(bus_name="${ServiceName}-${Stage}", prefix="${ServiceName}-${Stage}")
"""The bus, its routes, queue settings and queue policy (``adapters.eventbridge.wiring``,
which the relay's set-up and tests read too), named per stack (the names go through ``Fn::Sub``)."""


@dataclass(frozen=True)
class Consumer:
    """The function behind a route: the consumers it runs (``ORDERS_CONSUMERS``), the actions
    it may use on each table (by logical id), whether it publishes notifications (SNS)."""

    consumers: str
    tables: Mapping[str, tuple[str, ...]]
    publishes: bool = False


CONSUMERS: Mapping[str, Consumer] = {
    "views": Consumer("views", {"EventsTable": READ, "ViewsTable": READ_WRITE_DELETE}),
    "notifications": Consumer(
        "notifications", {"IdempotencyTable": READ_WRITE_DELETE}, publishes=True
    ),
    "saga": Consumer("saga", {"EventsTable": WRITE}),
}
"""The consumer of each route of :data:`WIRING` (``adapters.lambdas.consumers``)."""


def logical_id(route: Route) -> str:
    """The prefix of a route's resources' logical ids (``Views`` ...)."""
    return route.name.capitalize()


HANDLERS = {
    "Indexer": "adapters.lambdas.indexer.handler",
    "Relay": "adapters.lambdas.relay.handler",
    "Projections": "adapters.lambdas.projections.handler",
    "Consumer": "adapters.lambdas.consumers.handler",
}
"""The Lambda entry point of each kind of function (``module.function``)."""


def ref(name: str) -> Json:
    return {"Ref": name}


def arn(name: str) -> Json:
    return {"Fn::GetAtt": [name, "Arn"]}


def sub(text: str) -> Json:
    return {"Fn::Sub": text}


def named(suffix: str) -> Json:
    """A stage-scoped physical name: ``<ServiceName>-<Stage>-<suffix>``."""
    return sub(f"${{ServiceName}}-${{Stage}}-{suffix}")


def _table(name: str, sort_key_type: SortKeyType, *, stream: bool = False) -> Json:
    definition = table_definition("", sort_key_type)
    extra: Json = {}
    if stream:
        view_type = definition["StreamSpecification"]["StreamViewType"]
        extra["StreamSpecification"] = {"StreamViewType": view_type}
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "TableName": named(name),
            "AttributeDefinitions": definition["AttributeDefinitions"],
            "KeySchema": definition["KeySchema"],
            "BillingMode": definition["BillingMode"],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            **extra,
        },
    }


def _statement(actions: tuple[str, ...] | list[str], resources: list[Any]) -> Json:
    return {"Effect": "Allow", "Action": sorted(set(actions)), "Resource": resources}


def _table_statements(tables: Mapping[str, tuple[str, ...]]) -> list[Json]:
    return [_statement(actions, [arn(table)]) for table, actions in tables.items()]


def variables(**settings: Any) -> Json:
    """A function's ``Environment.Variables``: each setting (a field of
    :class:`~adapters.settings.Settings`) under its own variable, so no name can drift."""
    return {Settings.variable(name): value for name, value in settings.items()}


def _function(
    logical: str,
    handler: str,
    statements: list[Json],
    environment: Json,
    *,
    timeout: int,
    reserved: int | None = None,
) -> dict[str, Json]:
    """A function, its log group and its role (which may also write its own logs)."""
    log_statement = _statement(
        ["logs:CreateLogStream", "logs:PutLogEvents"], [arn(f"{logical}LogGroup")]
    )
    function: Json = {
        "Type": "AWS::Lambda::Function",
        "DependsOn": [f"{logical}LogGroup"],
        "Properties": {
            "FunctionName": named(logical.lower()),
            "Runtime": RUNTIME,
            "Handler": handler,
            "Code": {"S3Bucket": ref("CodeBucket"), "S3Key": ref("CodeKey")},
            "MemorySize": 512,
            "Timeout": timeout,
            "Role": arn(f"{logical}Role"),
            "Environment": {
                "Variables": variables(
                    backend=Backend.DYNAMODB.value,
                    write_mode=WriteMode.INDEXED.value,
                    events_table=ref("EventsTable"),
                    views_table=ref("ViewsTable"),
                    metrics_namespace=ref("MetricsNamespace"),
                    powertools_service_name=sub("${ServiceName}-" + logical.lower()),
                    **environment,
                )
            },
        },
    }
    if reserved is not None:
        function["Properties"]["ReservedConcurrentExecutions"] = reserved
    return {
        f"{logical}LogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": sub(f"/aws/lambda/${{ServiceName}}-${{Stage}}-{logical.lower()}"),
                "RetentionInDays": 30,
            },
        },
        f"{logical}Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": logical.lower(),
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [log_statement, *statements],
                        },
                    }
                ],
            },
        },
        f"{logical}Function": function,
        **{
            f"{logical}{metric}Alarm": _alarm(
                f"{logical.lower()}: the function's {metric} ({meaning})",
                {
                    "Namespace": "AWS/Lambda",
                    "MetricName": metric,
                    "Dimensions": [{"Name": "FunctionName", "Value": ref(f"{logical}Function")}],
                },
                "Sum",
                0,
            )
            for metric, meaning in (
                ("Errors", "invocations that raised or timed out"),
                ("Throttles", "invocations refused for concurrency"),
            )
        },
    }


def _every_minute(logical: str) -> dict[str, Json]:
    """A schedule that invokes ``<logical>Function`` every minute, and its permission."""
    return {
        f"{logical}Schedule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "ScheduleExpression": "rate(1 minute)",
                "State": "ENABLED",
                "Targets": [{"Arn": arn(f"{logical}Function"), "Id": logical.lower()}],
            },
        },
        f"{logical}SchedulePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": ref(f"{logical}Function"),
                "Principal": "events.amazonaws.com",
                "SourceArn": arn(f"{logical}Schedule"),
            },
        },
    }


def _alarm(
    description: str,
    metric: Json,
    statistic: str,
    threshold: Any,
    *,
    periods: int = 1,
    comparison: str = "GreaterThanThreshold",
    missing: str = "notBreaching",
) -> Json:
    """An alarm to the alarm topic; a heartbeat metric's alarm passes ``missing="breaching"``
    so a worker that stopped reporting alarms."""
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            **metric,
            "Statistic": statistic,
            "Period": 60,
            "EvaluationPeriods": periods,
            "Threshold": threshold,
            "ComparisonOperator": comparison,
            "TreatMissingData": missing,
            "AlarmActions": [ref("AlarmTopic")],
        },
    }


def _ours(metric: MetricSpec) -> Json:
    """The alarm fields naming one of our metrics (those without dimensions)."""
    assert not metric.dimensions, metric
    return {"Namespace": ref("MetricsNamespace"), "MetricName": metric.name}


def _with(document: Any, values: Mapping[str, Any]) -> Any:
    """``document`` with each string found in ``values`` replaced by its value."""
    if isinstance(document, dict):
        return {key: _with(item, values) for key, item in document.items()}
    if isinstance(document, list):
        return [_with(item, values) for item in document]
    return values.get(document, document) if isinstance(document, str) else document


def _rule_target(queue: str) -> Json:
    """The target delivering a bus event to ``queue`` as the contract envelope (the
    transformer of ``adapters.eventbridge.wiring``, with the stack's account and region)."""
    transformer = input_transformer("${AWS::AccountId}", "${AWS::Region}")
    return {
        "Id": "queue",
        "Arn": arn(queue),
        "InputTransformer": {**transformer, "InputTemplate": sub(transformer["InputTemplate"])},
    }


def _consumer(route: Route) -> dict[str, Json]:
    name = logical_id(route)
    consumer = CONSUMERS[route.name]
    queue, dlq, rule = f"{name}Queue", f"{name}DeadLetterQueue", f"{name}Rule"
    statements = [
        _statement(
            [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            ],
            [arn(queue)],
        ),
        *_table_statements(consumer.tables),
    ]
    environment: Json = {"consumers": consumer.consumers}
    if consumer.publishes:
        statements.append(_statement(["sns:Publish"], [ref("NotificationsTopic")]))
        environment["notifications_topic_arn"] = ref("NotificationsTopic")
    if "IdempotencyTable" in consumer.tables:
        environment["idempotency_table"] = ref("IdempotencyTable")
    policy = json.loads(WIRING.queue_policy("<queue>", "<rule>"))
    resources = {
        dlq: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": sub(WIRING.dead_letter_queue_name(route)),
                "MessageRetentionPeriod": WIRING.retention_seconds,
            },
        },
        queue: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": sub(WIRING.queue_name(route)),
                "VisibilityTimeout": max(
                    QUEUE_VISIBILITY_SECONDS, WIRING.visibility_timeout_seconds
                ),
                "MessageRetentionPeriod": WIRING.retention_seconds,
                "RedrivePolicy": {
                    "deadLetterTargetArn": arn(dlq),
                    "maxReceiveCount": WIRING.max_receive_count,
                },
            },
        },
        rule: {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Name": sub(WIRING.rule_name(route)),
                "Description": route.description,
                "EventBusName": arn("EventBus"),
                "EventPattern": route.pattern,
                "State": "ENABLED",
                "Targets": [_rule_target(queue)],
            },
        },
        f"{name}QueuePolicy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [ref(queue)],
                "PolicyDocument": _with(policy, {"<queue>": arn(queue), "<rule>": arn(rule)}),
            },
        },
        **_function(
            f"{name}Consumer",
            HANDLERS["Consumer"],
            statements,
            environment,
            timeout=CONSUMER_TIMEOUT_SECONDS,
        ),
        f"{name}EventSourceMapping": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "EventSourceArn": arn(queue),
                "FunctionName": ref(f"{name}ConsumerFunction"),
                "BatchSize": 10,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
            },
        },
        f"{name}DeadLetterAlarm": _alarm(
            f"{route.name}: a message was dead-lettered "
            f"(after {WIRING.max_receive_count} receives)",
            {
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}],
            },
            "Maximum",
            0,
        ),
        f"{name}DurationAlarm": _alarm(
            f"{route.name}: average consumer duration above 1,000 ms",
            {
                "Namespace": "AWS/Lambda",
                "MetricName": "Duration",
                "Dimensions": [{"Name": "FunctionName", "Value": ref(f"{name}ConsumerFunction")}],
            },
            "Average",
            1000,
            periods=5,
        ),
    }
    return resources


def template() -> Json:
    """The whole stack."""
    stream_statement = _statement(
        ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
        [{"Fn::GetAtt": ["EventsTable", "StreamArn"]}],
    )
    resources: Json = {
        "EventsTable": _table("events", "N", stream=True),
        "ViewsTable": _table("views", "S"),
        "IdempotencyTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "TableName": named("idempotency"),
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
            },
        },
        "EventBus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": sub(WIRING.bus_name)}},
        "NotificationsTopic": {
            "Type": "AWS::SNS::Topic",
            "Properties": {"TopicName": named("notifications")},
        },
        "AlarmTopic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": named("alarms")}},
        **_function(
            "Indexer",
            HANDLERS["Indexer"],
            [
                stream_statement,
                # ListStreams has no resource-level permission: it can only name "*".
                _statement(["dynamodb:ListStreams"], ["*"]),
                *_table_statements({"EventsTable": WRITE}),
            ],
            {},
            timeout=WORKER_TIMEOUT_SECONDS,
        ),
        "IndexerEventSourceMapping": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "EventSourceArn": {"Fn::GetAtt": ["EventsTable", "StreamArn"]},
                "FunctionName": ref("IndexerFunction"),
                "StartingPosition": "TRIM_HORIZON",
                "BatchSize": 1000,
                "MaximumBatchingWindowInSeconds": 1,
                "ParallelizationFactor": 1,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
            },
        },
        **_function(
            "Relay",
            HANDLERS["Relay"],
            [
                # Releasing a parked order deletes its item.
                *_table_statements({"EventsTable": READ_WRITE_DELETE}),
                _statement(["events:PutEvents"], [arn("EventBus")]),
            ],
            {
                "bus_name": {"Fn::GetAtt": ["EventBus", "Name"]},
                "relay_lease_seconds": str(RELAY_LEASE_SECONDS),
            },
            timeout=WORKER_TIMEOUT_SECONDS,
            reserved=1,
        ),
        **_every_minute("Relay"),
        **_function(
            "Projections",
            HANDLERS["Projections"],
            _table_statements({"EventsTable": READ, "ViewsTable": READ_WRITE_DELETE}),
            {},
            timeout=WORKER_TIMEOUT_SECONDS,
            reserved=1,
        ),
        **_every_minute("Projections"),
        "RelayLagAlarm": _alarm(
            "relay: notifications waiting to be published above the threshold for 5 minutes, "
            "or no lag reported (a silent relay)",
            _ours(RELAY_LAG),
            "Maximum",
            ref("RelayLagThreshold"),
            periods=5,
            missing="breaching",
        ),
        **{
            f"ProjectionLag{''.join(w.title() for w in name.split('_'))}Alarm": _alarm(
                f"projection {name}: notifications to apply above the threshold for 5 minutes, "
                "or no lag reported (a silent projections worker)",
                {
                    "Namespace": ref("MetricsNamespace"),
                    "MetricName": PROJECTION_LAG.name,
                    "Dimensions": [{"Name": "Projection", "Value": name}],
                },
                "Maximum",
                ref("ProjectionLagThreshold"),
                periods=5,
                missing="breaching",
            )
            for name in PROJECTIONS
        },
        "RelayStoppedAlarm": _alarm(
            "relay: stopped, a call refused for good such as a missing bus or access denied, or "
            "another permanent error (see its logs)",
            _ours(RELAY_STOPPED),
            "Sum",
            1,
            comparison="GreaterThanOrEqualToThreshold",
        ),
        "ParkedOrdersAlarm": _alarm(
            "relay or projection runner: an order is parked on an event it cannot handle "
            "(orders parked list)",
            _ours(PARKED_ORDERS),
            "Maximum",
            0,
        ),
        "IndexerLagAlarm": _alarm(
            "indexer: newest indexed stream record older than the threshold for 5 minutes",
            _ours(INDEXER_LAG),
            "Maximum",
            ref("IndexerLagThresholdMs"),
            periods=5,
        ),
        "IndexerIteratorAgeAlarm": _alarm(
            "indexer: the table's stream is read late (iterator age above the threshold)",
            {
                "Namespace": "AWS/Lambda",
                "MetricName": "IteratorAge",
                "Dimensions": [{"Name": "FunctionName", "Value": ref("IndexerFunction")}],
            },
            "Maximum",
            ref("IndexerLagThresholdMs"),
            periods=5,
        ),
    }
    for route in WIRING.routes:
        resources.update(_consumer(route))
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Event-sourced order service: event store, views, bus, queues, workers, "
        "alarms (generated by adapters/cloudformation.py)",
        "Parameters": {
            "ServiceName": {
                "Type": "String",
                "Default": "orders",
                "AllowedPattern": "[a-z][a-z0-9-]{0,20}",
                "Description": "Prefix of every resource name",
            },
            "Stage": {
                "Type": "String",
                "Default": "dev",
                "AllowedPattern": "[a-z][a-z0-9]{0,9}",
                "Description": "Deployment stage (dev, prod, ...), part of every name",
            },
            "MetricsNamespace": {
                "Type": "String",
                "Default": "EventsourcedOrders",
                "Description": "CloudWatch namespace of the service's own metrics",
            },
            "CodeBucket": {"Type": "String", "Description": "S3 bucket of the Lambda package"},
            "CodeKey": {"Type": "String", "Description": "S3 key of the Lambda package (zip)"},
            "RelayLagThreshold": {
                "Type": "Number",
                "Default": 1000,
                "MinValue": 1,
                "Description": "Alarm when this many notifications wait to be published",
            },
            "ProjectionLagThreshold": {
                "Type": "Number",
                "Default": 1000,
                "MinValue": 1,
                "Description": "Alarm when a projection has this many notifications to apply",
            },
            "IndexerLagThresholdMs": {
                "Type": "Number",
                "Default": 60000,
                "MinValue": 1,
                "Description": "Alarm when the indexer is this many milliseconds behind",
            },
        },
        "Resources": resources,
        "Outputs": {
            name: {"Value": value}
            for name, value in {
                "EventsTableName": ref("EventsTable"),
                "ViewsTableName": ref("ViewsTable"),
                "EventBusName": {"Fn::GetAtt": ["EventBus", "Name"]},
                "NotificationsTopicArn": ref("NotificationsTopic"),
                **{f"{logical_id(r)}QueueUrl": ref(f"{logical_id(r)}Queue") for r in WIRING.routes},
            }.items()
        },
    }


def render() -> str:
    """The template as written to :data:`TEMPLATE_PATH`."""
    return json.dumps(template(), indent=2) + "\n"


def main() -> None:
    """Write the template (``python -m adapters.deploy.template``)."""
    TEMPLATE_PATH.write_text(render())
    sys.stdout.write(f"wrote {TEMPLATE_PATH}\n")


if __name__ == "__main__":
    main()
