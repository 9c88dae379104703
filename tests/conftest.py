"""Stops the session's DynamoDB Local and moto servers (each started by the first test using it)."""

from __future__ import annotations

import pytest

from tests.support.dynamodb_local import stop_dynamodb_local
from tests.support.moto_server import stop_moto_server


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_dynamodb_local()
    stop_moto_server()
