"""Stops the session's DynamoDB Local server (started lazily by the first test needing it)."""

from __future__ import annotations

import pytest

from tests.support.dynamodb_local import stop_dynamodb_local


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_dynamodb_local()
