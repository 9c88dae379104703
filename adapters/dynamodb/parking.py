"""A :class:`~projections.parking.ParkingLot` in the event store's DynamoDB table.

==================  ================================  ========================  ===============
item                pk                                sk                        attributes
==================  ================================  ========================  ===============
parked order        ``{ns}#parked#{worker}``          60 bits of the order id's ``o`` order id,
                                                      SHA-256                   ``i`` ids (JSON),
                                                                                ``r`` reason,
                                                                                ``t`` parked at,
                                                                                ``q`` request,
                                                                                ``m`` note
skipped order       ``{ns}#skipped#{worker}``         skipped at (µs)           ``o``, ``i``,
                                                                                ``r``, ``m``
==================  ================================  ========================  ===============

Parking is one ``UpdateItem`` (the request stays unless cleared); asking is one conditional
``UpdateItem`` (the order must be parked); releasing deletes the item and, for a skip, writes
the skipped record in the same transaction; listing is one ``Query``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence

from adapters.dynamodb.datastore import (
    ConditionFailed,
    DynamoDBDatastore,
    Item,
    TransactionCancelled,
)
from adapters.dynamodb.items import key
from projections.parking import NotParkedError, ParkedOrder, ParkingLot, Request, SkippedOrder


class DynamoDBParkingLot(ParkingLot):
    """The parked orders of ``worker`` in ``datastore``'s table, under ``namespace``."""

    def __init__(self, datastore: DynamoDBDatastore, worker: str, namespace: str) -> None:
        self.datastore = datastore
        self.worker = worker
        self._parked_pk = f"{namespace}#parked#{worker}"
        self._skipped_pk = f"{namespace}#skipped#{worker}"

    def _key(self, order_id: str) -> Item:
        digest = hashlib.sha256(order_id.encode()).hexdigest()
        return key(self._parked_pk, int(digest[:15], 16))

    def parked(self) -> list[ParkedOrder]:
        items = self.datastore.query("pk = :pk", {":pk": {"S": self._parked_pk}})
        return sorted(map(_parked, items), key=lambda parked: parked.notification_ids[:1])

    def park(
        self,
        order_id: str,
        notification_ids: Sequence[int],
        reason: str,
        *,
        keep_request: bool = True,
    ) -> None:
        update = {
            "Key": self._key(order_id),
            "UpdateExpression": "SET o = :o, i = :i, r = :r, t = if_not_exists(t, :t)"
            + ("" if keep_request else " REMOVE q, m"),
            "ExpressionAttributeValues": {
                ":o": {"S": order_id},
                ":i": {"S": json.dumps(list(notification_ids))},
                ":r": {"S": reason},
                ":t": {"N": repr(time.time())},
            },
        }
        self.datastore.update_item(update)

    def ask(self, order_id: str, request: Request, note: str | None = None) -> ParkedOrder:
        values: Item = {":q": {"S": request.value}}
        expression = "SET q = :q"
        if note is None:
            expression += " REMOVE m"
        else:
            expression += ", m = :m"
            values[":m"] = {"S": note}
        update = {
            "Key": self._key(order_id),
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeValues": values,
        }
        try:
            self.datastore.update_item(update)
        except ConditionFailed:
            raise NotParkedError(self.worker, order_id) from None
        item = self.datastore.get_item(self._key(order_id))
        if item is None:
            raise NotParkedError(self.worker, order_id)
        return _parked(item)

    def release(self, order_id: str, *, skipped: str | None = None) -> None:
        item = self.datastore.get_item(self._key(order_id))
        if item is None:
            return
        actions: list[Item] = [
            {
                "Delete": {
                    "Key": self._key(order_id),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
        ]
        if skipped is not None:
            record = {
                **key(self._skipped_pk, time.time_ns() // 1000),
                "o": item["o"],
                "i": item["i"],
                "r": item["r"],
                "m": {"S": skipped},
            }
            actions.append({"Put": {"Item": record}})
        try:
            self.datastore.transact_write(actions, f"release of order {order_id}")
        except TransactionCancelled:
            return  # released meanwhile

    def skipped(self) -> list[SkippedOrder]:
        items = self.datastore.query("pk = :pk", {":pk": {"S": self._skipped_pk}})
        return [
            SkippedOrder(
                item["o"]["S"],
                tuple(json.loads(item["i"]["S"])),
                item["r"]["S"],
                item["m"]["S"],
                int(item["sk"]["N"]) / 1e6,
            )
            for item in items
        ]


def _parked(item: Item) -> ParkedOrder:
    return ParkedOrder(
        item["o"]["S"],
        tuple(json.loads(item["i"]["S"])),
        item["r"]["S"],
        float(item["t"]["N"]),
        Request(item["q"]["S"]) if "q" in item else None,
        item["m"]["S"] if "m" in item else None,
    )
