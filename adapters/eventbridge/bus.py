"""Amazon EventBridge: the relay's publisher, and the bus set-up the wiring describes.

:class:`EventBridgePublisher` sends ``PutEvents`` calls of at most 10 entries and 256 KB, each
entry sized as AWS sizes it (:func:`entry_size`), and reports which entries the bus refused
and whether sending them again can help. :func:`set_up_bus` creates (or brings up to date)
the bus, queues, dead-letter queues, queue policies, rules and targets of a
:class:`~adapters.eventbridge.wiring.BusWiring`. Clients are injected; the endpoint comes from the
standard ``AWS_ENDPOINT_URL_EVENTS`` / ``AWS_ENDPOINT_URL_SQS`` variables when boto3 builds
them, so the same code runs on AWS and on moto.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError
from eventsourcing.persistence import Notification

from adapters.deploy.resources import missing
from adapters.eventbridge.wiring import BusWiring, bus_entry, bus_input_transformer
from adapters.relay.ports import Entry, Publisher, PublishError, Rejection
from schemas import Envelope

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

MAX_ENTRIES: Final = 10
"""Entries per ``PutEvents`` call."""
MAX_BYTES: Final = 256 * 1024
"""Total entry size per ``PutEvents`` call, as :func:`entry_size` counts it: the default of the
publishers' ``max_bytes`` (AWS allows 1 MB since January 2026, 256 KB before)."""
TIME_BYTES: Final = 14
"""What a ``Time`` parameter counts for in an entry's size."""

RETRYABLE_CODES: Final = frozenset(
    {
        "InternalFailure",
        "InternalException",
        "ThrottlingException",
        "ServiceUnavailable",
        "RequestLimitExceeded",
        "LimitExceededException",
    }
)
"""Error codes (of an entry or of a whole call) after which sending again can succeed."""


def entry_size(entry: Mapping[str, Any]) -> int:
    """The size of a ``PutEvents`` entry as EventBridge computes it: 14 bytes for ``Time``,
    plus the UTF-8 bytes of ``Source``, ``DetailType``, ``Detail`` and each of ``Resources``."""
    size = TIME_BYTES if entry.get("Time") is not None else 0
    for name in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(name) or "").encode())
    return size + sum(len(resource.encode()) for resource in entry.get("Resources") or ())


class EventBridgePublisher(Publisher):
    """Publishes envelopes to the event bus ``bus_name`` through ``client``, in calls of at most
    ``max_bytes`` (the bus's limit per call and per entry)."""

    max_entries = MAX_ENTRIES

    def __init__(
        self, client: EventBridgeClient, bus_name: str, *, max_bytes: int = MAX_BYTES
    ) -> None:
        self.client = client
        self.bus_name = bus_name
        self.max_bytes = max_bytes

    def entry(self, notification: Notification, envelope: Envelope) -> Entry:
        body = {"EventBusName": self.bus_name, **bus_entry(envelope), "Time": envelope.time}
        return Entry(notification, envelope, body, entry_size(body))

    def send(self, entries: Sequence[Entry]) -> list[Rejection | None]:
        request: Any = [entry.body for entry in entries]
        try:
            response = self.client.put_events(Entries=request)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            message = f"PutEvents to bus {self.bus_name!r}: {error}"
            if code == "ResourceNotFoundException":
                message = f"{missing(f'event bus {self.bus_name!r}')}: {error}"
            raise PublishError(message, retryable=code in RETRYABLE_CODES) from error
        except BotoCoreError as error:
            raise PublishError(
                f"PutEvents to bus {self.bus_name!r}: {error}", retryable=True
            ) from error
        results = response["Entries"]
        return [_rejection(result) for result in results]


def _rejection(result: Mapping[str, Any]) -> Rejection | None:
    code = result.get("ErrorCode")
    if not code and result.get("EventId"):
        return None
    reason = f"EventBridge refused it: {code}: {result.get('ErrorMessage', '')}".rstrip(": ")
    return Rejection(reason, permanent=code not in RETRYABLE_CODES)


@dataclass(frozen=True)
class BusResources:
    """What :func:`set_up_bus` made: the bus ARN, and per route its queue and dead-letter
    queue URLs and its rule ARN."""

    bus_arn: str
    queue_urls: Mapping[str, str]
    dead_letter_queue_urls: Mapping[str, str]
    rule_arns: Mapping[str, str]


def set_up_bus(events: EventBridgeClient, sqs: SQSClient, wiring: BusWiring) -> BusResources:
    """Creates what ``wiring`` describes, or brings what exists up to it (safe to repeat)."""
    try:
        bus_arn = events.create_event_bus(Name=wiring.bus_name)["EventBusArn"]
    except events.exceptions.ResourceAlreadyExistsException:
        bus_arn = events.describe_event_bus(Name=wiring.bus_name)["Arn"]
    queues: dict[str, str] = {}
    dead_letters: dict[str, str] = {}
    rules: dict[str, str] = {}
    for route in wiring.routes:
        dead_letter_url = _queue(
            sqs, wiring.dead_letter_queue_name(route), wiring.dead_letter_queue_attributes()
        )
        queue_url = _queue(
            sqs, wiring.queue_name(route), wiring.queue_attributes(_arn(sqs, dead_letter_url))
        )
        rule_arn = events.put_rule(
            Name=wiring.rule_name(route),
            EventBusName=wiring.bus_name,
            EventPattern=json.dumps(route.pattern),
            Description=route.description,
            State="ENABLED",
        )["RuleArn"]
        queue_arn = _arn(sqs, queue_url)
        sqs.set_queue_attributes(
            QueueUrl=queue_url, Attributes={"Policy": wiring.queue_policy(queue_arn, rule_arn)}
        )
        transformer: Any = bus_input_transformer(bus_arn)
        events.put_targets(
            Rule=wiring.rule_name(route),
            EventBusName=wiring.bus_name,
            Targets=[{"Id": "queue", "Arn": queue_arn, "InputTransformer": transformer}],
        )
        queues[route.name] = queue_url
        dead_letters[route.name] = dead_letter_url
        rules[route.name] = rule_arn
    return BusResources(bus_arn, queues, dead_letters, rules)


def _queue(sqs: SQSClient, name: str, attributes: dict[str, str]) -> str:
    """The URL of queue ``name``, created if missing, with ``attributes`` set."""
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # type: ignore[arg-type]
    return url


def _arn(sqs: SQSClient, queue_url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]
