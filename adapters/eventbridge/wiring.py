"""What the bus looks like: one description that the set-up, the tests, the CLI and the
infrastructure template all read, so they cannot disagree. Pure data and functions, no SDK.

- A custom event bus (``BusWiring.bus_name``).
- One :class:`Route` per consumer: an EventBridge rule with an event pattern (by ``source``,
  ``detail-type``, ``detail.detail.status`` ...) targeting an SQS queue, with a dead-letter queue
  after ``max_receive_count`` receives, the visibility timeout and retention users were given,
  and a queue policy that lets only that rule send.
- The published shape of an entry (:func:`bus_entry`), the same for every producer, the relay
  and the payment service alike: ``Source`` and ``DetailType`` are the envelope's ``source`` and
  ``detail-type``, ``Detail`` is the whole contract envelope as ``schemas/`` defines it, once.
- The rule targets' ``InputTransformer`` (:func:`input_transformer`) that turns the bus event
  back into the contract envelope, with the producer's stable event id, for the queue.

EventBridge wraps what ``PutEvents`` sends in an envelope of its own (``version`` "0", an ``id``
it draws afresh per call), with the entry's ``Detail`` as its ``detail``; so a rule matches the
contract detail's fields under ``detail.detail`` (``{"detail": {"detail": {"status": [...]}}}``).
The transformer delivers the producer's envelope: ``version``, ``id``, ``time`` and ``detail``
from the entry's ``Detail``, ``source`` and ``detail-type`` as the bus routed the event (so a
queue never receives an envelope its rule did not match), plus the bus's ``account`` and
``region`` and empty ``resources``, which the contract allows and Powertools'
``EventBridgeModel`` requires. They are written into the template rather than read from each
event: every path costs the bus a lookup per event and target.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from orders import ORDER_EVENT_TYPES
from schemas import Envelope, to_json


def input_transformer(account: str, region: str) -> dict[str, Any]:
    """The rule target's ``InputTransformer``: it builds the contract envelope a queue receives
    from the bus event, with the bus's ``account`` and ``region``. String placeholders are
    quoted in the template (their values are uuids, times and names: nothing to escape), the
    ``detail`` object is bare, as EventBridge and moto both apply them."""
    template = (
        '{"version": "<version>", "id": "<id>", "detail-type": "<detailType>", '
        '"source": "<source>", "time": "<time>", '
        f'"account": {json.dumps(account)}, "region": {json.dumps(region)}, "resources": [], '
        '"detail": <detail>}'
    )
    return {
        "InputPathsMap": {
            **{name: f"$.detail.{name}" for name in ("version", "id", "time", "detail")},
            "source": "$.source",
            "detailType": "$.detail-type",
        },
        "InputTemplate": template,
    }


def bus_input_transformer(bus_arn: str) -> dict[str, Any]:
    """:func:`input_transformer` for the bus ``bus_arn`` (its account and region)."""
    _, _, _, region, account, _ = bus_arn.split(":", 5)
    return input_transformer(account, region)


def bus_entry(envelope: Envelope | BaseModel) -> dict[str, str]:
    """The ``PutEvents`` entry that publishes ``envelope`` (without ``EventBusName``):
    ``Source`` and ``DetailType`` its ``source`` and ``detail-type``, ``Detail`` the envelope."""
    text = to_json(envelope)
    document = json.loads(text)
    return {"Source": document["source"], "DetailType": document["detail-type"], "Detail": text}


def bus_event(envelope: Envelope | BaseModel) -> dict[str, Any]:
    """The fields of the event the bus matches rules against (``source``, ``detail-type``,
    ``detail``: the whole envelope), as parsed JSON."""
    document: dict[str, Any] = json.loads(to_json(envelope))
    return {
        "source": document["source"],
        "detail-type": document["detail-type"],
        "detail": document,
    }


@dataclass(frozen=True)
class Route:
    """Events matching ``pattern`` (an EventBridge event pattern) go to queue ``name``."""

    name: str
    pattern: Mapping[str, Any]
    description: str


ORDER_SOURCE: Final = "order-service"
PAYMENT_SOURCE: Final = "payment-service"
ORDER_DETAIL_TYPES: Final = tuple(event.TOPIC.partition(":")[2] for event in ORDER_EVENT_TYPES)
PAYMENT_DETAIL_TYPES: Final = ("PaymentSucceeded", "PaymentFailed")

DEFAULT_ROUTES: Final = (
    Route(
        "views",
        {"source": [ORDER_SOURCE], "detail-type": list(ORDER_DETAIL_TYPES)},
        "Every order event, for the downstream views.",
    ),
    Route(
        "notifications",
        {"source": [ORDER_SOURCE], "detail-type": list(ORDER_DETAIL_TYPES)},
        "Every order event, for customer notifications of status changes.",
    ),
    Route(
        "saga",
        {"source": [PAYMENT_SOURCE], "detail-type": list(PAYMENT_DETAIL_TYPES)},
        "Payment service events, for the payment saga.",
    ),
)
"""The consumers' routes: the CLI's ``bus setup`` and the CloudFormation template both use them."""


@dataclass(frozen=True)
class BusWiring:
    """The bus, its rules and queues, named from ``prefix`` (values as users were given)."""

    bus_name: str = "orders"
    prefix: str = "orders"
    routes: Sequence[Route] = DEFAULT_ROUTES
    visibility_timeout_seconds: int = 30
    retention_seconds: int = 14 * 24 * 3600
    max_receive_count: int = 3

    def route(self, name: str) -> Route:
        """The route called ``name`` (``KeyError`` naming the routes there are otherwise)."""
        for route in self.routes:
            if route.name == name:
                return route
        known = ", ".join(route.name for route in self.routes)
        raise KeyError(f"no route {name!r} (routes: {known})")

    def queue_name(self, route: Route) -> str:
        return f"{self.prefix}-{route.name}"

    def dead_letter_queue_name(self, route: Route) -> str:
        return f"{self.prefix}-{route.name}-dlq"

    def rule_name(self, route: Route) -> str:
        return f"{self.prefix}-{route.name}"

    def queue_attributes(self, dead_letter_arn: str) -> dict[str, str]:
        """A route queue's attributes, dead-lettering to ``dead_letter_arn``."""
        redrive = {
            "deadLetterTargetArn": dead_letter_arn,
            "maxReceiveCount": self.max_receive_count,
        }
        return {
            "VisibilityTimeout": str(self.visibility_timeout_seconds),
            "MessageRetentionPeriod": str(self.retention_seconds),
            "RedrivePolicy": json.dumps(redrive),
        }

    def dead_letter_queue_attributes(self) -> dict[str, str]:
        return {"MessageRetentionPeriod": str(self.retention_seconds)}

    @staticmethod
    def queue_policy(queue_arn: str, rule_arn: str) -> str:
        """The policy letting only the rule ``rule_arn`` send to the queue ``queue_arn``."""
        statement = {
            "Sid": "OnlyItsRule",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

    def routes_of(self, envelope: Envelope) -> list[Route]:
        """The routes whose pattern matches ``envelope`` on the bus, as the rules decide."""
        event = bus_event(envelope)
        return [route for route in self.routes if matches(route.pattern, event)]


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether ``event`` matches the EventBridge ``pattern``, for patterns of exact values.

    Each field of the pattern is a list of allowed values or a nested pattern; every field must
    match. Raises ``ValueError`` for content filters (``prefix``, ``numeric`` ...) it does not
    evaluate, so a route cannot silently mean something else here than on the bus.
    """
    for name, allowed in pattern.items():
        value = event.get(name)
        if isinstance(allowed, Mapping):
            if not isinstance(value, Mapping) or not matches(allowed, value):
                return False
            continue
        if any(isinstance(option, Mapping) for option in allowed):
            msg = f"content filters are not evaluated here: {name}: {allowed}"
            raise ValueError(msg)
        values = value if isinstance(value, list) else [value]
        if not any(option == item for option in allowed for item in values):
            return False
    return True
