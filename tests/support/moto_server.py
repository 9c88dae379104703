"""One moto server per test session, on 127.0.0.1, reset between tests.

:func:`moto_server` starts ``moto.server.ThreadedMotoServer`` (the HTTP server moto ships) in a
thread of the test process on a free loopback port on first use, and returns the same server
afterwards; :func:`stop_moto_server` (called at session end by ``tests/conftest.py``, and at
exit) stops it. Clients reach it over HTTP like any AWS endpoint, from this process or from
child processes (:meth:`MotoServer.env`).

One fix to moto 5.2.5 is applied while the server runs, narrowly: when a rule's
``InputTransformer`` output has a ``time`` field, moto's SQS delivery converts it with
``float()`` as if it were its own epoch timestamp, which raises for any ISO 8601 string and
drops the message (AWS delivers the transformer's output as it is). :func:`_deliver_time_as_given`
makes moto leave a string ``time`` untouched; its own numeric times are still converted.
"""

from __future__ import annotations

import atexit
import os
import urllib.request
from typing import TYPE_CHECKING, Any

import boto3
from moto.events.models import Rule
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

REGION = "us-east-1"
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"


class _TimeAsGiven(dict[str, Any]):
    """An event whose ``time`` moto's SQS delivery must not convert (see the module doc)."""

    def __contains__(self, key: object) -> bool:
        return key != "time" and super().__contains__(key)


_original_send_to_sqs_queue = Rule._send_to_sqs_queue


def _deliver_time_as_given(
    self: Rule, resource_id: str, event: dict[str, Any], group_id: str | None = None
) -> None:
    if isinstance(event.get("time"), str):
        event = _TimeAsGiven(event)
    _original_send_to_sqs_queue(self, resource_id, event, group_id)


class MotoServer:
    """A running moto server on ``endpoint_url``."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        Rule._send_to_sqs_queue = _deliver_time_as_given  # type: ignore[method-assign]

    def env(self) -> dict[str, str]:
        """Variables that point boto3 (in any process) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }

    def _client(self, service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def events(self) -> EventBridgeClient:
        client: EventBridgeClient = self._client("events")
        return client

    def sqs(self) -> SQSClient:
        client: SQSClient = self._client("sqs")
        return client

    def cloudwatch(self) -> CloudWatchClient:
        client: CloudWatchClient = self._client("cloudwatch")
        return client

    def reset(self) -> None:
        """Forgets every resource of every service."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass

    def stop(self) -> None:
        self._server.stop()
        Rule._send_to_sqs_queue = _original_send_to_sqs_queue  # type: ignore[method-assign]


_server: MotoServer | None = None


def moto_server() -> MotoServer:
    """The session's moto server, started on first use, reset for the caller."""
    global _server  # noqa: PLW0603 - one server per session, started lazily
    if _server is None:
        _server = MotoServer()
        atexit.register(stop_moto_server)
    _server.reset()
    return _server


def stop_moto_server() -> None:
    global _server  # noqa: PLW0603
    if _server is not None:
        _server.stop()
        _server = None


def child_env(server: MotoServer, **extra: str) -> dict[str, str]:
    """This process's environment pointed at ``server``, for a child process."""
    return {**os.environ, **server.env(), **extra}
