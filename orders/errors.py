"""Errors of the order domain and of saving it.

Every error names what was wrong. Raising one of them guarantees that nothing was recorded.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID


class OrderError(Exception):
    """Base class of the errors the order domain raises on purpose."""


class OrderRuleError(OrderError, ValueError):
    """A command broke a rule of the Order aggregate; no event was recorded.

    ``rule`` is a stable, machine-readable name of the rule (for example ``"positive-quantity"``).
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule


class OrderNotFoundError(OrderError, LookupError):
    """No order is stored under ``order_id``."""

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"order {order_id} not found")
        self.order_id = order_id


class OrderConflictError(OrderError):
    """A command kept losing the race for ``order_id`` and gave up after ``attempts`` tries.

    ``expected_version`` is the version the last try loaded; ``actual_version`` the version the
    store held when that try was rejected (``None`` if the store could not tell).
    """

    def __init__(
        self,
        order_id: UUID,
        expected_version: int | None,
        actual_version: int | None,
        attempts: int,
    ) -> None:
        super().__init__(
            f"order {order_id}: concurrent saves kept conflicting after {attempts} attempts "
            f"(expected version {expected_version}, found version {actual_version})"
        )
        self.order_id = order_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        self.attempts = attempts


class OrderQueryError(OrderError, ValueError):
    """A question about an order that cannot be answered as asked (a naive time, ``version``
    with ``as_of``, a version below 1); the message names the problem."""


class OrderNotYetPlacedError(OrderNotFoundError):
    """``order_id`` exists, but was placed after ``as_of``: it did not exist yet at that time."""

    def __init__(self, order_id: UUID, as_of: datetime, placed_at: datetime) -> None:
        OrderError.__init__(
            self,
            f"order {order_id} did not exist yet at {as_of.isoformat()}: "
            f"it was placed at {placed_at.isoformat()}",
        )
        self.order_id = order_id
        self.as_of = as_of
        self.placed_at = placed_at
