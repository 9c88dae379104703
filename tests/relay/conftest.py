"""Fixtures of the relay tests: a wired bus on the session's moto server, a SQLite service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orders import OrderService
from tests.relay.support import Bus, fresh_moto, sqlite_service, wired_bus


@pytest.fixture
def bus() -> Bus:
    """The default wiring set up on a freshly reset moto server."""
    return wired_bus(fresh_moto())


@pytest.fixture
def service(tmp_path: Path) -> Iterator[OrderService]:
    """An order service on a SQLite file in the test's directory."""
    with sqlite_service(tmp_path) as service:
        yield service
