"""Stops the session's servers (each started lazily by the first test needing it)."""

from __future__ import annotations

import pytest

from tests.support.dynamodb_local import stop_dynamodb_local
from tests.support.moto_server import stop_moto_server


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_dynamodb_local()
    stop_moto_server()
