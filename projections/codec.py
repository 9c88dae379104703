"""Row data as JSON text, exactly: ``Decimal("12.50")`` comes back as ``Decimal("12.50")``.

What the SQLite and DynamoDB view stores keep a row's data as. It is the library's JSON
transcoder with its ``Decimal`` transcoding, so every JSON-like value of the port round-trips.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventsourcing.persistence import DecimalAsStr, JSONTranscoder

from projections.ports import JSONLike

_transcoder = JSONTranscoder()
_transcoder.register(DecimalAsStr())


def dumps(value: JSONLike) -> str:
    """``value`` as JSON text."""
    return _transcoder.encode(value).decode()


def loads(text: str) -> Any:
    """The value ``text`` holds."""
    return _transcoder.decode(text.encode())


def loads_data(text: str) -> dict[str, JSONLike]:
    """A row's data from its JSON text."""
    data: Mapping[str, JSONLike] = loads(text)
    return dict(data)
