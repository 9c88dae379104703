"""The event store's access to DynamoDB: one table, one client, errors in the library's terms.

:class:`DynamoDBDatastore` is what the recorders share. It takes a boto3 DynamoDB client
(injected; the factory builds one from the environment) and the table name, counts every
call (:attr:`DynamoDBDatastore.metrics`), asks for consumed capacity on every data call,
checks a transaction against DynamoDB's limits before sending it, and turns botocore's
errors into the ``eventsourcing.persistence`` exceptions, so callers see
``IntegrityError``, ``OperationalError`` and so on, never a ``ClientError``.

Throttling and transient errors are retried by botocore, as the client's ``Config``
(``retries={"mode": "standard" | "adaptive", "max_attempts": n}``) says; the datastore adds
no retry loop of its own. botocore gives each ``TransactWriteItems`` call a
``ClientRequestToken`` and resends it unchanged, so a retried transaction that had in fact
committed is not applied twice. If the retries run out, the error (``OperationalError``)
leaves the outcome unknown: reading the stream tells. A cancelled transaction is raised as
:class:`TransactionCancelled` with its cancellation reasons, for the recorder to decide what
they mean.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
)
from eventsourcing.persistence import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)

from adapters.deploy.resources import SETUP_COMMAND
from adapters.dynamodb.metrics import DynamoDBMetrics
from adapters.dynamodb.table import (
    MAX_ITEM_BYTES,
    MAX_TRANSACTION_ACTIONS,
    MAX_TRANSACTION_BYTES,
    DynamoDBLimitError,
    SortKeyType,
    create_table_if_missing,
    item_size,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Item = dict[str, Any]
"""An item, a key or an action in DynamoDB's low-level attribute-value format."""

_THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionInProgressException",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


class TransactionCancelled(Exception):  # noqa: N818 - named after DynamoDB's TransactionCanceled.
    """DynamoDB cancelled a transaction; nothing of it was written.

    ``reasons`` has one entry per action, in the order the actions were sent, each with a
    ``Code`` (``"None"``, ``"ConditionalCheckFailed"``, ``"TransactionConflict"``, ...) and,
    for a failed condition with ``ReturnValuesOnConditionCheckFailure="ALL_OLD"``, the
    ``Item`` as it was.
    """

    def __init__(self, reasons: Sequence[Mapping[str, Any]]) -> None:
        codes = ", ".join(str(r.get("Code")) for r in reasons)
        super().__init__(f"transaction cancelled: {codes}")
        self.reasons = reasons


class DynamoDBDatastore:
    """The table ``table_name`` reached through ``client``.

    ``metrics`` counts the calls made through ``client`` (a new :class:`DynamoDBMetrics`
    unless one is given, so several datastores can add into one). ``poll_interval`` is how
    often, in seconds, a subscription asks for notifications written by other processes.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        metrics: DynamoDBMetrics | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.metrics = metrics or DynamoDBMetrics()
        self.metrics.attach(client)
        self.poll_interval = poll_interval

    def create_table_if_missing(
        self, sort_key_type: SortKeyType = "N", *, stream: bool = True
    ) -> bool:
        """Creates the table unless it exists (development set-ups); True if it created it."""
        with translate_errors(self.table_name):
            return create_table_if_missing(
                self.client, self.table_name, sort_key_type, stream=stream
            )

    def get_item(self, key: Item) -> Item | None:
        """The item under ``key``, read strongly consistent, or None."""
        with translate_errors(self.table_name):
            response = self.client.get_item(
                TableName=self.table_name,
                Key=key,
                ConsistentRead=True,
                ReturnConsumedCapacity="TOTAL",
            )
        item = response.get("Item")
        self.metrics.add_estimate("GetItem", read_units(item_size(item) if item else 0))
        return item

    def update_item(self, update: Item) -> None:
        """One ``UpdateItem`` of an ``Update`` action's body (without ``TableName``);
        a failed condition raises :class:`ConditionFailed`."""
        self._write_item("UpdateItem", update)
        self.metrics.add_estimate("UpdateItem", write_units(action_size({"Update": update})))

    def put_item(self, put: Item, what: str) -> None:
        """One ``PutItem`` of a ``Put`` action's body (without ``TableName``), checked against
        the item size limit first; a failed condition raises :class:`ConditionFailed`."""
        (size,) = check_limits([{"Put": put}], what)
        self._write_item("PutItem", put)
        self.metrics.add_estimate("PutItem", write_units(size))

    def _write_item(self, operation: str, body: Item) -> None:
        write = self.client.put_item if operation == "PutItem" else self.client.update_item
        with translate_errors(self.table_name):
            try:
                write(TableName=self.table_name, ReturnConsumedCapacity="TOTAL", **body)
            except self.client.exceptions.ConditionalCheckFailedException as e:
                retried = e.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) > 0
                item = cast("Item | None", e.response.get("Item"))
                raise ConditionFailed(item, retried=retried) from None

    def query(
        self,
        key_condition: str,
        values: Item,
        *,
        forward: bool = True,
        page_size: int | None = None,
    ) -> Iterator[Item]:
        """Items matching ``key_condition`` in key order (reversed unless ``forward``).

        Reads strongly consistent, one page at a time as the iterator is consumed;
        ``page_size`` caps the items read per page, so stopping early reads no more.
        """
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": forward,
            "ConsistentRead": True,
            "ReturnConsumedCapacity": "TOTAL",
        }
        if page_size is not None:
            kwargs["Limit"] = page_size
        while True:
            with translate_errors(self.table_name):
                page = self.client.query(**kwargs)
            items = page.get("Items", [])
            # Reads are billed by the same rules on DynamoDB Local and AWS: take the figure
            # reported (sizing every item read costs as much as decoding it).
            consumed = page.get("ConsumedCapacity")
            units = consumed.get("CapacityUnits") if consumed else None
            if units is None:
                units = read_units(sum(map(item_size, items)))
            self.metrics.add_estimate("Query", float(units))
            yield from items
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def scan(self, filter_expression: str, values: Item, projection: str) -> Iterator[Item]:
        """Every item matching ``filter_expression``, with the attributes ``projection``
        names, one page at a time. It reads the whole table: for maintenance, never queries."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": filter_expression,
            "ExpressionAttributeValues": values,
            "ProjectionExpression": projection,
            "ReturnConsumedCapacity": "TOTAL",
        }
        while True:
            with translate_errors(self.table_name):
                page = self.client.scan(**kwargs)
            consumed = page.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0)
            self.metrics.add_estimate("Scan", float(consumed))
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def transact_write(
        self, actions: Sequence[Item], what: str, sizes: Sequence[int] | None = None
    ) -> None:
        """Writes ``actions`` (``TransactWriteItems`` entries) atomically, or nothing.

        Raises :class:`~adapters.dynamodb.table.DynamoDBLimitError` without sending anything
        when the transaction breaks a limit (``what`` says what was being written), and
        :class:`TransactionCancelled` when DynamoDB cancels it. ``sizes``: each action's
        :func:`action_size`, when the caller knows them already.
        """
        sizes = check_limits(actions, what, sizes)
        with translate_errors(self.table_name):
            try:
                items: Any = [self._with_table(action) for action in actions]
                self.client.transact_write_items(
                    TransactItems=items, ReturnConsumedCapacity="TOTAL"
                )
            except self.client.exceptions.TransactionCanceledException as e:
                raise TransactionCancelled(e.response.get("CancellationReasons", [])) from None
        units = sum(2 * write_units(size) for size in sizes)
        self.metrics.add_estimate("TransactWriteItems", units)

    def _with_table(self, action: Item) -> Item:
        ((kind, body),) = action.items()
        return {kind: {"TableName": self.table_name, **body}}


class ConditionFailed(Exception):  # noqa: N818 - named after DynamoDB's ConditionalCheckFailed.
    """A single-item write's condition failed; ``item`` is the item as it was (or None).

    ``retried``: botocore had sent the call more than once (an earlier attempt's answer was
    lost), so the item found may be this very call's."""

    def __init__(self, item: Item | None, *, retried: bool = False) -> None:
        super().__init__("conditional check failed")
        self.item = item
        self.retried = retried


def read_units(size: int) -> int:
    """Read units AWS bills for reading ``size`` bytes strongly consistent in one call."""
    return max(1, math.ceil(size / (4 * 1024)))


def write_units(size: int) -> int:
    """Write units AWS bills for writing an item of ``size`` bytes (doubled in a transaction)."""
    return max(1, math.ceil(size / 1024))


def check_limits(
    actions: Sequence[Item], what: str, known: Sequence[int] | None = None
) -> list[int]:
    """Each action's size (:func:`action_size`, or ``known``); raises
    :class:`DynamoDBLimitError` if ``actions`` break a transaction's limits."""
    if len(actions) > MAX_TRANSACTION_ACTIONS:
        raise DynamoDBLimitError("transaction actions", len(actions), MAX_TRANSACTION_ACTIONS, what)
    sizes = list(known) if known is not None else [action_size(action) for action in actions]
    for size in sizes:
        if size > MAX_ITEM_BYTES:
            raise DynamoDBLimitError("item size", size, MAX_ITEM_BYTES, what)
    if sum(sizes) > MAX_TRANSACTION_BYTES:
        raise DynamoDBLimitError("transaction size", sum(sizes), MAX_TRANSACTION_BYTES, what)
    return sizes


def action_size(action: Item) -> int:
    """Bytes an action writes: a put's item, or an update's key and values."""
    ((kind, body),) = action.items()
    if kind == "Put":
        return item_size(body["Item"])
    values = body.get("ExpressionAttributeValues", {})
    return item_size(body["Key"]) + item_size(values)


@contextlib.contextmanager
def translate_errors(table_name: str) -> Iterator[None]:
    """Turns botocore errors into the ``eventsourcing.persistence`` exceptions."""
    try:
        yield
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        message = f"DynamoDB table {table_name!r}: {e}"
        if code == "ResourceNotFoundException":
            message += (
                f" (create it: {SETUP_COMMAND}, or set DYNAMODB_CREATE_TABLE=y in development)"
            )
            raise ProgrammingError(message) from e
        if code == "ConditionalCheckFailedException":
            raise IntegrityError(message) from e
        if code == "ValidationException":
            raise DataError(message) from e
        if code in _THROTTLING_CODES:
            raise OperationalError(message) from e
        raise DatabaseError(message) from e
    except ParamValidationError as e:
        raise ProgrammingError(f"DynamoDB table {table_name!r}: {e}") from e
    except NoCredentialsError as e:
        raise InterfaceError(f"DynamoDB table {table_name!r}: {e}") from e
    except BotoCoreError as e:
        raise OperationalError(f"DynamoDB table {table_name!r}: {e}") from e
