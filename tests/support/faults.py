"""One fault model for the AWS path, injected below our code: a botocore event hook.

:class:`Faults` registers on a client's ``before-send`` event, the last step before botocore
puts a signed request on the wire, so everything above it (our code, botocore's retry mode)
runs exactly as it does against AWS. For each call it draws, from a seeded random generator
(reproducible), whether one of the faults AWS produces happens to that attempt:

``throttle``
    the service answers 400 with its throttling error, in its protocol (JSON, query XML or
    CBOR), which botocore retries with backoff;
``server_error``
    the service answers 500 (retried);
``reset``
    the connection is reset before the request is sent: nothing applied (retried);
``lost_answer``
    the request is sent and applied, then the connection drops before the answer arrives
    (botocore sends the same request again: the write is applied twice unless the caller
    recognises its own);
``burst``
    every attempt of the next ``burst_length`` calls is throttled, longer than botocore's
    retries, so the error reaches our code.

Each fault is counted per kind and operation in :attr:`Faults.injected`. Scenarios choose the
operations (``operations``: the API names, e.g. ``("PutItem", "TransactWriteItems")``) and the
share of attempts each fault takes. :class:`FaultPlan` is the same faults scripted, for a test
that needs them in a known order (and an access denied, a permanent error).
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ConnectionClosedError
from botocore.httpsession import URLLib3Session

WRITE_OPERATIONS = (
    "PutItem",
    "UpdateItem",
    "TransactWriteItems",
    "PutEvents",
    "SendMessage",
    "SendMessageBatch",
    "DeleteMessage",
    "DeleteMessageBatch",
    "Publish",
)
"""Every write API the framework calls: where "applied, then the answer lost" matters."""


THROTTLING_CODES = {"sqs": "RequestThrottled", "sns": "Throttling", "cloudwatch": "Throttling"}
"""The error code each service throttles with (the rest: ``ThrottlingException``)."""


class _Raw:
    """The body of a fabricated answer, as urllib3 would hand it to botocore."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body

    def read(self, *_: Any, **__: Any) -> bytes:
        body, self._body = self._body, b""
        return body


@dataclass
class Faults:
    """Seeded faults on the ``operations`` of the clients it is installed on."""

    seed: int
    throttle: float = 0.0
    server_error: float = 0.0
    reset: float = 0.0
    lost_answer: float = 0.0
    operations: tuple[str, ...] = WRITE_OPERATIONS
    burst_length: int = 0
    injected: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._session = URLLib3Session()
        self._burst_left = 0
        self._forced: list[str] = []

    def install(self, client: Any) -> Any:
        """Registers the hook on ``client`` (any boto3 client); returns the client."""
        model = client.meta.service_model
        event_service = model.service_id.hyphenize()
        for operation in self.operations:
            client.meta.events.register(
                f"before-send.{event_service}.{operation}",
                functools.partial(
                    self._before_send,
                    service=model.service_name,
                    protocol=model.resolved_protocol,
                    operation=operation,
                ),
            )
        return client

    def start_burst(self, calls: int) -> None:
        """Throttle every attempt of the next ``calls`` calls (a burst past botocore's tries)."""
        with self._lock:
            self._burst_left = calls

    @contextlib.contextmanager
    def once(self, kind: str) -> Iterator[None]:
        """The next attempt gets fault ``kind``, whatever the shares say (in the block)."""
        with self._lock:
            self._forced.append(kind)
        try:
            yield
        finally:
            with self._lock:
                self._forced.clear()

    @property
    def total(self) -> int:
        return sum(self.injected.values())

    def _draw(self) -> str | None:
        with self._lock:
            if self._forced:
                return self._forced.pop()
            if self._burst_left > 0:
                self._burst_left -= 1
                return "burst"
            roll = self._random.random()
        for kind, share in (
            ("throttle", self.throttle),
            ("server_error", self.server_error),
            ("reset", self.reset),
            ("lost_answer", self.lost_answer),
        ):
            if roll < share:
                return kind
            roll -= share
        return None

    def _before_send(
        self, request: Any, *, service: str, protocol: str, operation: str, **_: Any
    ) -> AWSResponse | None:
        kind = self._draw()
        if kind is None:
            return None
        with self._lock:
            self.injected[(kind, operation)] += 1
        if kind in {"throttle", "burst"}:
            return throttled(request.url, protocol, service)
        if kind == "server_error":
            return answer(request.url, 500, b"")
        if kind == "reset":
            raise ConnectionClosedError(endpoint_url=request.url)
        self._session.send(request)  # Applied by the service ...
        raise ConnectionClosedError(endpoint_url=request.url)  # ... and its answer lost.


def answer(
    url: str, status: int, body: bytes, headers: dict[str, str] | None = None
) -> AWSResponse:
    return AWSResponse(url, status, HTTPHeaders(headers or {}), _Raw(body))  # type: ignore[arg-type]


def throttled(url: str, protocol: str, service: str) -> AWSResponse:
    """The throttling answer of ``service``, in its ``protocol``."""
    return refused(url, protocol, THROTTLING_CODES.get(service, "ThrottlingException"))


def refused(url: str, protocol: str, code: str, status: int = 400) -> AWSResponse:
    """An error answer with ``code``, in ``protocol`` (JSON, query XML or CBOR)."""
    if protocol == "query":
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            "<Message>injected</Message></Error><RequestId>0</RequestId></ErrorResponse>"
        ).encode()
        return answer(url, status, body, {"Content-Type": "text/xml"})
    error = {"__type": code, "message": f"injected {code}"}
    if protocol == "smithy-rpc-v2-cbor":
        headers = {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
        return answer(url, status, cbor_map(error), headers)
    headers = {"Content-Type": "application/x-amz-json-1.0"}
    return answer(url, status, json.dumps(error).encode(), headers)


class FaultPlan:
    """Scripted faults, where a test needs them in a known order: the first ``len(plan)``
    sends of ``operation`` (``"*"``: any) whose body holds ``marker`` get the faults of
    ``plan`` in turn (``"throttle"``, ``"5xx"``, ``"reset"``, ``"denied"``: access denied, a
    permanent error), then every send passes; :attr:`injected` counts them."""

    def __init__(self, client: Any, operation: str, plan: list[str], marker: str = "") -> None:
        self.plan = list(plan)
        self.marker = marker.encode()
        self.injected = 0
        model = client.meta.service_model
        self._protocol = model.resolved_protocol
        self._service = model.service_name
        service = model.service_id.hyphenize()
        event = f"before-send.{service}" + ("" if operation == "*" else f".{operation}")
        client.meta.events.register(event, self._send)

    @property
    def exhausted(self) -> bool:
        return not self.plan

    def _send(self, request: Any, **_: Any) -> AWSResponse | None:
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        if not self.plan or self.marker not in body:
            return None
        fault = self.plan.pop(0)
        self.injected += 1
        if fault == "throttle":
            return throttled(request.url, self._protocol, self._service)
        if fault == "denied":
            return refused(request.url, self._protocol, "AccessDeniedException")
        if fault == "5xx":
            return answer(request.url, 503, b"")
        raise ConnectionClosedError(endpoint_url=request.url)


def cbor_map(values: dict[str, str]) -> bytes:
    """``values`` (short text keys and values) as a CBOR map (RFC 8949)."""

    def text(value: str) -> bytes:
        data = value.encode()
        assert len(data) < 256
        return (bytes([0x60 + len(data)]) if len(data) < 24 else bytes([0x78, len(data)])) + data

    assert len(values) < 24
    return bytes([0xA0 + len(values)]) + b"".join(text(k) + text(v) for k, v in values.items())
