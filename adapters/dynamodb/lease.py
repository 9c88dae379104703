"""A :class:`~adapters.relay.outbox.Lease` kept in one item of the event store's table.

The item (``{namespace}#lease#{name}``, sort key 0) holds the owner ``o`` and the end of its
term ``x`` (epoch seconds). Taking or renewing is one conditional ``PutItem`` (the lease is
missing, ended, or already the caller's), so of racing owners exactly one wins; releasing is
one conditional ``UpdateItem``; reading the holder one ``GetItem``.
"""

from __future__ import annotations

import contextlib

from adapters.dynamodb.datastore import ConditionFailed, DynamoDBDatastore
from adapters.dynamodb.items import key
from adapters.relay.ports import Lease, LeaseTerm

OWNER = "o"
EXPIRES = "x"


class DynamoDBLease(Lease):
    """The lease ``name`` in ``datastore``'s table, under ``namespace``."""

    def __init__(self, datastore: DynamoDBDatastore, name: str, namespace: str = "relay") -> None:
        self.datastore = datastore
        self.name = name
        self._key = key(f"{namespace}#lease#{name}")

    def acquire(self, owner: str, expires_at: float, now: float) -> bool:
        put = {
            "Item": {**self._key, OWNER: {"S": owner}, EXPIRES: {"N": repr(expires_at)}},
            "ConditionExpression": "attribute_not_exists(pk) OR #o = :o OR #x < :now",
            "ExpressionAttributeNames": {"#o": OWNER, "#x": EXPIRES},
            "ExpressionAttributeValues": {":o": {"S": owner}, ":now": {"N": repr(now)}},
        }
        try:
            self.datastore.put_item(put, f"lease {self.name}")
        except ConditionFailed:
            return False
        return True

    def release(self, owner: str) -> None:
        update = {
            "Key": self._key,
            "UpdateExpression": "SET #x = :zero",
            "ConditionExpression": "#o = :o",
            "ExpressionAttributeNames": {"#o": OWNER, "#x": EXPIRES},
            "ExpressionAttributeValues": {":o": {"S": owner}, ":zero": {"N": "0"}},
        }
        with contextlib.suppress(ConditionFailed):
            self.datastore.update_item(update)

    def holder(self) -> LeaseTerm | None:
        item = self.datastore.get_item(self._key)
        if item is None:
            return None
        return LeaseTerm(item[OWNER]["S"], float(item[EXPIRES]["N"]))
