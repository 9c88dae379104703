"""What the relay tests share: a bus on moto, a service with a log, reading queues back."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from jsonschema import Draft202012Validator, FormatChecker

from adapters.bootstrap.relay import relay_for
from adapters.eventbridge.bus import MAX_BYTES, BusResources, EventBridgePublisher, set_up_bus
from adapters.eventbridge.wiring import BusWiring
from adapters.local.backend import local_env
from adapters.relay.outbox import Relay, RelaySettings
from orders import OrderEvent, OrderService
from schemas import parse_envelope, to_envelope
from schemas.generate import SCHEMA_DIR
from tests.support.moto_server import MotoServer, moto_server

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

FAST = RelaySettings(window=100, lease_seconds=3.0, poll_seconds=0.2)
"""Relay settings for tests: short lease terms and polls."""


@dataclass
class Bus:
    """The wired bus on the test's moto server."""

    server: MotoServer
    wiring: BusWiring
    resources: BusResources

    def publisher(self, max_bytes: int = MAX_BYTES) -> EventBridgePublisher:
        return EventBridgePublisher(
            self.server.client("events"), self.wiring.bus_name, max_bytes=max_bytes
        )

    def received(self, route: str) -> list[str]:
        """Every message body the route's queue holds now, in receive order (deleted)."""
        return drain(self.server.client("sqs"), self.resources.queue_urls[route])

    def received_dead_letters(self, route: str) -> list[str]:
        """Every message body the route's dead-letter queue holds now (deleted)."""
        return drain(self.server.client("sqs"), self.resources.dead_letter_queue_urls[route])

    def reader(self, *routes: str) -> QueueReader:
        """A thread receiving (and deleting) the messages of ``routes``' queues as they come:
        moto's receive costs time in proportion to the messages a queue holds."""
        return QueueReader(
            self.server.client("sqs"), {r: self.resources.queue_urls[r] for r in routes}
        )


class QueueReader(threading.Thread):
    """Receives from queues until stopped; ``bodies[route]`` in receive order."""

    def __init__(self, sqs: SQSClient, queue_urls: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.sqs = sqs
        self.queue_urls = queue_urls
        self.bodies: dict[str, list[str]] = {route: [] for route in queue_urls}
        self._stopping = threading.Event()

    def run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            received = 0
            for route, url in self.queue_urls.items():
                batch = drain(self.sqs, url)
                self.bodies[route].extend(batch)
                received += len(batch)
            if stopping and not received:
                return
            if not received:
                time.sleep(0.05)

    def __enter__(self) -> QueueReader:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stops once every queue is found empty after the stop was asked for."""
        self._stopping.set()
        self.join()


def fresh_moto() -> MotoServer:
    """The session's moto server, emptied."""
    server = moto_server()
    server.reset()
    return server


def child_env(server: MotoServer) -> dict[str, str]:
    """This process's environment pointed at ``server``, for a child process."""
    return {**os.environ, **server.env()}


def wired_bus(server: MotoServer, wiring: BusWiring | None = None) -> Bus:
    wiring = wiring or BusWiring()
    return Bus(server, wiring, set_up_bus(server.client("events"), server.client("sqs"), wiring))


def sqlite_service(directory: Path) -> OrderService:
    """An order service on a SQLite file in ``directory`` (what the local backend uses)."""
    return OrderService(env=local_env(directory))


def relay(service: OrderService, bus: Bus, settings: RelaySettings = FAST) -> Relay:
    return relay_for(service, bus.publisher(), settings=settings)


def drain(sqs: SQSClient, queue_url: str) -> list[str]:
    """Every message ``queue_url`` holds now, received and deleted, in receive order."""
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            return bodies
        bodies.extend(message["Body"] for message in messages)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(messages)
            ],
        )


def stored_order_events(service: OrderService) -> Iterator[OrderEvent]:
    """Every event of the log, in log order."""
    position = 0
    while notifications := service.recorder.select_notifications(
        start=position, limit=500, inclusive_of_start=False
    ):
        for notification in notifications:
            event = service.mapper.to_domain_event(notification)
            assert isinstance(event, OrderEvent)
            yield event
        position = notifications[-1].id


@functools.cache
def schema_validator(file_name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / file_name).read_text())
    return Draft202012Validator(schema, format_checker=FormatChecker())


def assert_keeps_the_contract(body: str) -> dict[str, Any]:
    """``body`` validates against its detail-type's schema file, the envelope file and
    Powertools' EventBridgeModel; returns it parsed."""
    document: dict[str, Any] = json.loads(body)
    for name in (f"{document['detail-type']}.schema.json", "envelope.schema.json"):
        schema_validator(name).validate(document)
    EventBridgeModel.model_validate(document)
    return document


def assert_is_the_stored_event(body: str, event: OrderEvent) -> None:
    """``body`` is exactly the contract envelope of ``event`` (amounts equal as Decimals)."""
    assert parse_envelope(body) == to_envelope(event)
