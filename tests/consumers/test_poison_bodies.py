"""Bodies no parser can read are poison with a reason, never an unclassified crash."""

from __future__ import annotations

import pytest

from adapters.consumers.dispatcher import (
    ORDER_DETAIL_TYPES,
    Dispatcher,
    PoisonMessageError,
    failure_reason,
)

DEEP = 50_000


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[" * DEEP + "]" * DEEP, "nested too deep to parse"),
        ('{"a":' * DEEP + "1" + "}" * DEEP, "nested too deep to parse"),
        (b'{"detail-type": "OrderPlaced\xff"}', "body is not JSON"),
        ('{"n": ' + "9" * 5000 + "}", "body is not JSON"),
        ('{"detail-type": "OrderPlaced", "detail": ' + "[" * 900 + "]" * 900 + "}", "contract"),
    ],
    ids=["deep array", "deep object", "invalid utf-8", "huge integer", "nested detail"],
)
def test_an_unreadable_body_is_poison_naming_why(body: str | bytes, reason: str) -> None:
    handled: list[object] = []
    with pytest.raises(PoisonMessageError) as poisoned:
        Dispatcher([(ORDER_DETAIL_TYPES, handled.append)])(body)
    assert reason in failure_reason(poisoned.value)
    assert failure_reason(poisoned.value).startswith("poison message: ")
    assert handled == []
