"""How the order value objects are stored: JSON transcodings for ``eventsourcing``'s mapper.

The names (``order_line``, ``order_lines``) are part of the stored format; never change them.
Decoding trusts what was stored (it was validated when made), as the library does for events.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from orders.values import OrderLine, OrderLines


class OrderLineAsDict(Transcoding):
    """An ``OrderLine`` as ``{"sku", "quantity", "unit_price"}`` (price as a decimal string)."""

    type = OrderLine
    name = "order_line"

    def encode(self, obj: OrderLine) -> dict[str, Any]:
        return {"sku": obj.sku, "quantity": obj.quantity, "unit_price": str(obj.unit_price)}

    def decode(self, data: dict[str, Any]) -> OrderLine:
        return OrderLine.restored(data["sku"], data["quantity"], Decimal(data["unit_price"]))


class OrderLinesAsList(Transcoding):
    """``OrderLines`` as the list of its lines."""

    type = OrderLines
    name = "order_lines"

    def encode(self, obj: OrderLines) -> list[OrderLine]:
        return list(obj.items)

    def decode(self, data: list[OrderLine]) -> OrderLines:
        return OrderLines.restored(tuple(data))


def register_order_transcodings(transcoder: JSONTranscoder) -> None:
    """Teach ``transcoder`` the order value objects (the library's own types come first)."""
    transcoder.register(OrderLineAsDict())
    transcoder.register(OrderLinesAsList())
