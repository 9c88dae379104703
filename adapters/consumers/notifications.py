"""Customer notifications: ``Order <id> is now <status>`` on each change of public status.

The public status changes with exactly four event types: ``OrderPlaced`` (now pending),
``PaymentConfirmed`` (processing), ``OrderCompleted`` and ``OrderCancelled``. Lines changed and
shipped leave it as it was, so they notify nobody. :class:`Notifier` is transport-free: it hands
the text to ``publish``; that it happens once per event under redelivery is the job of the
deduplication wrapped around it (``adapters.sns.idempotency``).
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.contract import Envelope

STATUS_CHANGES = frozenset({"OrderPlaced", "PaymentConfirmed", "OrderCompleted", "OrderCancelled"})
"""The detail-types after which an order's public status is not what it was before."""


def notification_text(envelope: Envelope) -> str:
    """What the customer is told about ``envelope``."""
    return f"Order {envelope.detail.order_id} is now {envelope.detail.status}"


class Notifier:
    """The handler that publishes a notification for each status change (see module docstring)."""

    def __init__(self, publish: Callable[[str, Envelope], None]) -> None:
        self.publish = publish

    def __call__(self, envelope: Envelope) -> None:
        if envelope.detail_type in STATUS_CHANGES:
            self.publish(notification_text(envelope), envelope)
