"""Faults injected below our code: a botocore ``before-send`` hook that answers chosen calls
with throttling, 5xx or a reset connection for a bounded number of sends, then lets them pass."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ConnectionClosedError


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def _json_error(status: int, code: str, url: str) -> AWSResponse:
    body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    headers["x-amzn-query-error"] = f"{code};Sender"
    return AWSResponse(url, status, headers, _Raw(body))


class FaultPlan:
    """Answers the first ``len(plan)`` sends of ``operation`` (``"*"``: any) whose body holds
    ``marker`` with the faults in ``plan`` (``"throttle"``, ``"5xx"``, ``"reset"``,
    ``"denied"``), then passes every send through; counts them."""

    def __init__(self, client: Any, operation: str, plan: list[str], marker: str = "") -> None:
        self.plan = list(plan)
        self.marker = marker.encode()
        self.injected = 0
        service = client.meta.service_model.service_id.hyphenize()
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
            return _json_error(400, "ThrottlingException", request.url)
        if fault == "denied":
            return _json_error(400, "AccessDeniedException", request.url)
        if fault == "5xx":
            return _json_error(503, "ServiceUnavailable", request.url)
        raise ConnectionClosedError(endpoint_url=request.url)
