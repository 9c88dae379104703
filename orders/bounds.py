"""The bounds of every text field and of the line count: the one place they are named.

An order the domain accepts must travel every hop whole: the event store (one DynamoDB item of
at most 400 KB per event), the notification log, the relay's ``PutEvents`` entry (256 KB today,
``EventBridgePublisher(max_bytes=...)``), the rule's delivery to SQS (a message of at most
256 KB today) and the views on DynamoDB, where a customer id is part of a partition key (at most
2,048 bytes; a sort key at most 1,024). The bounds below are in characters (code points, as JSON
Schema's ``maxLength`` counts them) and text may hold no control characters, so one character is
at most 4 bytes of UTF-8 and of JSON as the store, the bus and the queue write it (``"`` and
``\\`` escape to 2 bytes; JSON's 6-byte ``\\u`` escapes are only needed for control characters).

Derivation of the largest envelope (worst case: every character 4 bytes, every number at
``MAX_DIGITS`` digits):

- a line: ``sku`` 128 x 4 = 512 B, quantity and unit price 15 digits each, names and punctuation
  about 50 B: at most 600 B; 100 lines at most 60,000 B;
- the rest of a detail: ``customerId`` 256 x 4 = 1,024 B, ``correlationId`` and ``causationId``
  256 x 4 each = 2,048 B, a ``reason`` 1,024 x 4 = 4,096 B or a ``paymentId`` 256 x 4 = 1,024 B,
  ids, status, amount, currency, version and names about 400 B: at most 7,600 B;
- so a detail is at most 67,600 B (66 KB) and the envelope around it adds about 250 B.

Each hop against that: the relay's entry carries the envelope once (66 KB; it would fit twice as
well) of the bus's 256 KB; SQS delivers the envelope once (66 KB of 256 KB); the store's item
holds the event's JSON (66 KB, plus the library's metadata, of 400 KB); the views' keys hold at
most a customer id (1,024 B of a 2,048 B partition key, prefixed by a view name of under 64 B).
So the 1 MB limits of January 2026 only add headroom. A stored ``OrderCancelled`` reason for a
failed payment is ``payment <id> failed: <reason>``, so a payment service's reason is bounded to
``MAX_PAYMENT_FAILURE_REASON`` and the cancellation reason stays within ``MAX_REASON``.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from orders.errors import OrderRuleError

MAX_LINES: Final = 100
"""The most lines one order may have."""

MAX_SKU: Final = 128
"""The most characters of a SKU."""

MAX_CUSTOMER_ID: Final = 256
"""The most characters of a customer id (a partition key of the customer views)."""

MAX_PAYMENT_ID: Final = 256
"""The most characters of a payment id."""

MAX_REASON: Final = 1024
"""The most characters of a cancellation reason."""

MAX_PAYMENT_FAILURE_REASON: Final = MAX_REASON - MAX_PAYMENT_ID - len("payment  failed: ")
"""The most characters of the reason a payment service gives for a failed payment."""

MAX_TRACE_ID: Final = 256
"""The most characters of a correlation or causation id."""


def bounded_text(value: object, *, rule: str, length_rule: str, name: str, max_length: int) -> str:
    """``value`` if it is a string with a non-blank character (else rule ``rule``), at most
    ``max_length`` characters (else rule ``length_rule``) and no control character (else rule
    ``text-printable``)."""
    if not isinstance(value, str) or not value.strip():
        raise OrderRuleError(rule, f"{name} must be a non-empty string, not {value!r}")
    if len(value) > max_length:
        raise OrderRuleError(
            length_rule,
            f"{name} must have at most {max_length} characters, not {len(value)}",
        )
    if any(unicodedata.category(character) == "Cc" for character in value):
        raise OrderRuleError(
            "text-printable", f"{name} may not contain control characters: {value[:80]!r}"
        )
    return value
