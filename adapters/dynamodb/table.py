"""The event store's table: key schema, provisioning, and DynamoDB's size limits.

The table has a string partition key ``pk`` and a numeric sort key ``sk``, no indexes, no
TTL, and a DynamoDB Stream of new images (``NEW_IMAGE``), which the indexed write mode's
indexer reads (:mod:`adapters.dynamodb.indexer`; the transactional mode does not need it).
:func:`table_definition` returns the ``CreateTable`` arguments; it is the single source of the
schema, for :func:`create_table_if_missing` and for infrastructure as code (a CloudFormation
``AWS::DynamoDB::Table`` declares the same ``AttributeDefinitions``, ``KeySchema``,
``BillingMode`` and ``StreamSpecification``).

The limits are DynamoDB's documented ones. :func:`item_size` computes an item's size by
DynamoDB's rules (attribute names count, lists and maps cost 3 bytes plus 1 per element,
a number takes a byte per two significant digits plus one), so a request the store accepts
is not rejected by DynamoDB for size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from eventsourcing.persistence import DataError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import CreateTableInputTypeDef

PARTITION_KEY = "pk"
SORT_KEY = "sk"

MAX_TRANSACTION_ACTIONS = 100
"""Actions (puts, updates, condition checks) in one ``TransactWriteItems``."""
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
"""Aggregate size of the items in one ``TransactWriteItems``."""
MAX_ITEM_BYTES = 400 * 1024
"""Size of one item, attribute names included."""


class DynamoDBLimitError(DataError):
    """A write would break one of DynamoDB's limits; it was not sent, nothing was written.

    ``limit`` names the limit (``"item size"``, ``"transaction actions"``,
    ``"transaction size"``), ``size`` is what the write needed, ``maximum`` what DynamoDB allows.
    """

    def __init__(self, limit: str, size: int, maximum: int, what: str) -> None:
        super().__init__(f"{what}: {limit} {size} exceeds DynamoDB's maximum of {maximum}")
        self.limit = limit
        self.size = size
        self.maximum = maximum


SortKeyType = Literal["N", "S"]


def table_definition(
    table_name: str, sort_key_type: SortKeyType = "N", *, stream: bool = True
) -> CreateTableInputTypeDef:
    """The ``CreateTable`` arguments of an event store table named ``table_name`` (a view
    store's table has the same keys with a string ``sort_key_type``, and no ``stream``: only
    the event store's stream is read, by the indexed mode's indexer)."""
    definition: CreateTableInputTypeDef = {
        "TableName": table_name,
        "AttributeDefinitions": [
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": sort_key_type},
        ],
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        definition["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    return definition


def create_table_if_missing(
    client: DynamoDBClient,
    table_name: str,
    sort_key_type: SortKeyType = "N",
    *,
    stream: bool = True,
) -> bool:
    """Creates the table unless it exists, waits until it is active; True if it created it."""
    try:
        client.create_table(**table_definition(table_name, sort_key_type, stream=stream))
    except client.exceptions.ResourceInUseException:
        created = False
    else:
        created = True
    client.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    return created


def item_size(item: Mapping[str, Any]) -> int:
    """Size in bytes of an item in the low-level attribute-value format, by DynamoDB's rules."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def value_size(value: Mapping[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "B":
        return len(data)
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").strip("0")
        return (len(digits) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in data.items())
    msg = f"attribute type {kind!r} is not used by the event store"
    raise TypeError(msg)
