"""moto's server with one fix: ``python -m tests.support.moto_fixed -H 127.0.0.1 -p PORT``.

When a rule's ``InputTransformer`` output has a ``time`` field, moto 5.2.5's SQS delivery
converts it with ``float()`` as if it were moto's own epoch timestamp: that raises for any ISO
8601 string (the contract envelope's ``time``) and the message is dropped. AWS delivers the
transformer's output as it is. Here moto leaves a string ``time`` untouched; its own numeric
times are converted as before, so nothing else changes.
"""

from __future__ import annotations

from typing import Any

from moto.events.models import Rule
from moto.server import main

_send_to_sqs_queue = Rule._send_to_sqs_queue


class _TimeAsGiven(dict[str, Any]):
    """An event whose ``time`` moto's SQS delivery must not convert."""

    def __contains__(self, key: object) -> bool:
        return key != "time" and super().__contains__(key)


def _deliver_time_as_given(
    self: Rule, resource_id: str, event: dict[str, Any], group_id: str | None = None
) -> None:
    if isinstance(event.get("time"), str):
        event = _TimeAsGiven(event)
    _send_to_sqs_queue(self, resource_id, event, group_id)


if __name__ == "__main__":
    Rule._send_to_sqs_queue = _deliver_time_as_given  # type: ignore[method-assign]
    main()
