"""A view store on a DynamoDB table of its own: the read models of the AWS backend.

Calls go through :class:`~adapters.dynamodb.DynamoDBDatastore` (limits checked before sending,
errors translated, every call and its capacity counted in ``datastore.metrics``).

Key design (table: string ``pk`` hash key, string ``sk`` range key, on-demand, no index):

==========  ===========================  ===========  ======================================
item        pk                           sk           attributes
==========  ===========================  ===========  ======================================
row         ``v#{view}#{partition}``     ``.{key}``   ``v`` version, ``j`` data as JSON text
                                                      (exact decimals), ``+i:{f}`` / ``+d:{f}``
                                                      int / decimal sums of :class:`Add`,
                                                      ``={f}`` fields an ``Add`` set (JSON)
position    ``p#{name}``                 ``.``        ``n`` the position
==========  ===========================  ===========  ======================================

A query is one ``Query`` of one ``pk``, keys in order, strongly consistent. A row's data is read
as its JSON, then the ``={f}`` fields set over it, then the ``+`` sums added to it, so an
:class:`Add` (an ``UpdateItem`` ``ADD``, exact: DynamoDB numbers are decimal) has the port's
meaning on any row. DynamoDB normalises numbers, so a sum comes back numerically exact but with
its trailing zeros dropped (``Decimal("13.5")`` for ``12.50 + 1.00``); written data keeps them.

A commit is one ``TransactWriteItems`` (each change one action, the position one more, each
expected position a ``ConditionCheck``: at most 100 actions), or one ``PutItem``/``UpdateItem``
when it has one action. Conditions: a row's ``expected_version`` (0: no row or a row of version
0), the position's expected value and the expected positions' values, all checked by DynamoDB; on
failure the cancellation reasons (items as they were) name what failed.
An item DynamoDB refuses as invalid (``ValidationException``, or a transaction cancelled with a
``ValidationError`` reason: a key over 2,048 bytes, say) is a data error, ``ViewLimitError``,
never a row conflict: retrying cannot help.
``drop`` is the one ``Scan``: maintenance after a rebuild, never behind a query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from eventsourcing.persistence import DataError

from adapters.dynamodb.datastore import (
    ConditionFailed,
    DynamoDBDatastore,
    Item,
    TransactionCancelled,
)
from adapters.dynamodb.table import MAX_TRANSACTION_ACTIONS
from projections.codec import dumps, loads, loads_data
from projections.memory import check_commit, row_id
from projections.ports import (
    MAX_EXPECTATIONS,
    Add,
    Advance,
    Change,
    Delete,
    Expect,
    JSONLike,
    Page,
    PositionConflictError,
    Put,
    Row,
    RowConflictError,
    ViewLimitError,
    ViewStore,
)

VERSION = "v"
DATA = "j"
POSITION = "n"
INT_SUM = "+i:"
DECIMAL_SUM = "+d:"
SET_FIELD = "="


def row_key(view: str, partition: str, key: str) -> Item:
    if "#" in view:
        msg = f"a view name may not contain '#': {view!r}"
        raise ValueError(msg)
    return {"pk": {"S": f"v#{view}#{partition}"}, "sk": {"S": f".{key}"}}


def position_key(name: str) -> Item:
    return {"pk": {"S": f"p#{name}"}, "sk": {"S": "."}}


def version_condition(expected: int) -> tuple[str, Item]:
    """A condition that the item's version is ``expected`` (0: no item, or version 0)."""
    if expected == 0:
        return "attribute_not_exists(#v) OR #v = :expected", {":expected": {"N": "0"}}
    return "#v = :expected", {":expected": {"N": str(expected)}}


def position_condition(expected: int | None) -> tuple[str, Item]:
    """A condition that the position item holds ``expected`` (None: it was never recorded)."""
    if expected is None:
        return "attribute_not_exists(#n)", {}
    return "#n = :expected", {":expected": {"N": str(expected)}}


class DynamoDBViewStore(ViewStore):
    """Views in ``datastore``'s table (see the module docstring for the layout)."""

    max_changes_per_commit = MAX_TRANSACTION_ACTIONS - 1 - MAX_EXPECTATIONS

    def __init__(self, datastore: DynamoDBDatastore) -> None:
        self.datastore = datastore

    def create_table_if_missing(self) -> bool:
        """Creates the table unless it exists (development set-ups); True if it created it."""
        return self.datastore.create_table_if_missing(sort_key_type="S", stream=False)

    def commit(
        self,
        changes: Sequence[Change],
        advance: Advance | None = None,
        expect: Sequence[Expect] = (),
    ) -> None:
        check_commit(changes, self.max_changes_per_commit)
        if len(expect) > MAX_EXPECTATIONS:
            msg = f"{len(expect)} expected positions exceed the {MAX_EXPECTATIONS} per commit"
            raise ViewLimitError(msg)
        actions = [self._action(change) for change in changes]
        if advance is not None:
            actions.append(self._advance_action(advance))
        actions += [self._expect_action(position) for position in expect]
        if not actions:
            return
        what = f"view store commit of {len(changes)} changes"
        try:
            if len(actions) == 1 and ("Put" in actions[0] or "Update" in actions[0]):
                self._write_one(actions[0], what)
            else:
                self.datastore.transact_write(actions, what)
        except DataError as error:  # DynamoDBLimitError, or DynamoDB's ValidationException
            raise ViewLimitError(f"{what}: {error}") from None
        except ConditionFailed as failed:
            raise self._conflict(changes, advance, expect, 0, failed.item, known=True) from None
        except TransactionCancelled as cancelled:
            raise self._cancelled(changes, advance, expect, cancelled.reasons) from None

    def _write_one(self, action: Item, what: str) -> None:
        ((kind, body),) = action.items()
        body = {k: v for k, v in body.items() if k != "ReturnValuesOnConditionCheckFailure"}
        body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if kind == "Put":
            self.datastore.put_item(body, what)
        else:
            self.datastore.update_item(body)

    def _cancelled(
        self,
        changes: Sequence[Change],
        advance: Advance | None,
        expect: Sequence[Expect],
        reasons: Sequence[Mapping[str, Any]],
    ) -> RowConflictError | PositionConflictError | ViewLimitError:
        """The error for a cancelled transaction: an invalid item, else the first failed
        condition, else (a race lost to another transaction) the position, whose holder moved
        on."""
        codes = [reason.get("Code") for reason in reasons]
        if "ValidationError" in codes:
            index = codes.index("ValidationError")
            view, partition, key = (
                row_id(changes[index]) if index < len(changes) else ("position", "", "")
            )
            return ViewLimitError(
                f"view {view} row {partition[:80]}/{key[:80]}: DynamoDB refused it: "
                f"{reasons[index].get('Message', '')}"
            )
        if "ConditionalCheckFailed" in codes:
            index = codes.index("ConditionalCheckFailed")
            return self._conflict(
                changes, advance, expect, index, reasons[index].get("Item"), known=True
            )
        if advance is not None:
            return PositionConflictError(advance.name, advance.expected, None)
        index = next(i for i, code in enumerate(codes) if code not in (None, "None"))
        return self._conflict(changes, advance, expect, index, None, known=False)

    @staticmethod
    def _conflict(
        changes: Sequence[Change],
        advance: Advance | None,
        expect: Sequence[Expect],
        index: int,
        item: Item | None,
        *,
        known: bool,
    ) -> RowConflictError | PositionConflictError:
        """The error for action ``index`` failing; ``item`` is what DynamoDB found, if
        ``known`` (a failed condition), else the action lost a race (the value is unknown)."""
        if index >= len(changes):
            positions = [Expect(advance.name, advance.expected)] if advance is not None else []
            failed = [*positions, *expect][index - len(changes)]
            position = int(item[POSITION]["N"]) if item and POSITION in item else None
            return PositionConflictError(failed.name, failed.value, position if known else None)
        change = changes[index]
        view, partition, key = row_id(change)
        expected = 0 if isinstance(change, Add) else change.expected_version or 0
        version = int(item[VERSION]["N"]) if item and VERSION in item else 0
        return RowConflictError(view, partition, key, expected, version if known else None)

    def _action(self, change: Change) -> Item:
        view, partition, key = row_id(change)
        item_key = row_key(view, partition, key)
        body: Item
        if isinstance(change, Put):
            item = {
                **item_key,
                VERSION: {"N": str(change.row.version)},
                DATA: {"S": dumps(dict(change.row.data))},
            }
            body = {"Item": item}
            kind = "Put"
        elif isinstance(change, Delete):
            body = {"Key": item_key}
            kind = "Delete"
        else:
            return {"Update": self._add_update(item_key, change)}
        expected = change.expected_version
        if expected is not None:
            condition, values = version_condition(expected)
            body |= {
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#v": VERSION},
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        return {kind: body}

    @staticmethod
    def _add_update(item_key: Item, change: Add) -> Item:
        names: dict[str, str] = {}
        values: Item = {}
        adds: list[str] = []
        sets: list[str] = []
        for number, (name, delta) in enumerate(change.deltas.items()):
            prefix = DECIMAL_SUM if isinstance(delta, Decimal) else INT_SUM
            names[f"#a{number}"] = prefix + name
            values[f":a{number}"] = {"N": str(delta)}
            adds.append(f"#a{number} :a{number}")
        for number, (name, value) in enumerate(change.data.items()):
            names[f"#s{number}"] = SET_FIELD + name
            values[f":s{number}"] = {"S": dumps(value)}
            sets.append(f"#s{number} = :s{number}")
        expression = " ".join(
            part
            for part in (
                f"ADD {', '.join(adds)}" if adds else "",
                f"SET {', '.join(sets)}" if sets else "",
            )
            if part
        )
        if not expression:  # Nothing to add: make sure the row exists.
            names["#v"] = VERSION
            values[":zero"] = {"N": "0"}
            expression = "SET #v = if_not_exists(#v, :zero)"
        return {
            "Key": item_key,
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    @staticmethod
    def _expect_action(position: Expect) -> Item:
        condition, values = position_condition(position.value)
        body: Item = {
            "Key": position_key(position.name),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#n": POSITION},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if values:
            body["ExpressionAttributeValues"] = values
        return {"ConditionCheck": body}

    @staticmethod
    def _advance_action(advance: Advance) -> Item:
        condition, values = position_condition(advance.expected)
        body: Item = {
            "Item": {**position_key(advance.name), POSITION: {"N": str(advance.to)}},
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#n": POSITION},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if values:
            body["ExpressionAttributeValues"] = values
        return {"Put": body}

    def get(self, view: str, partition: str, key: str) -> Row | None:
        item = self.datastore.get_item(row_key(view, partition, key))
        return decode_row(view, partition, item) if item else None

    def query(
        self,
        view: str,
        partition: str,
        *,
        descending: bool = False,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page:
        pk = row_key(view, partition, "")["pk"]
        condition = "pk = :pk"
        values: Item = {":pk": pk}
        if after is not None:
            condition += f" AND sk {'<' if descending else '>'} :after"
            values[":after"] = {"S": f".{after}"}
        items = self.datastore.query(
            condition,
            values,
            forward=not descending,
            page_size=None if limit is None else limit + 1,
        )
        rows: list[Row] = []
        more = False
        for item in items:
            if limit is not None and len(rows) == limit:
                more = True
                break
            rows.append(decode_row(view, partition, item))
        return Page(rows, rows[-1].key if more and rows else None)

    def position(self, name: str) -> int | None:
        item = self.datastore.get_item(position_key(name))
        return int(item[POSITION]["N"]) if item else None

    def drop(self, view: str) -> int:
        row_key(view, "", "")  # checks the name
        keys = self.datastore.scan(
            "begins_with(pk, :prefix)", {":prefix": {"S": f"v#{view}#"}}, "pk, sk"
        )
        deleted = 0
        batch: list[Item] = []
        for item in keys:
            batch.append({"Delete": {"Key": item}})
            if len(batch) == 100:
                self.datastore.transact_write(batch, f"drop of view {view}")
                deleted, batch = deleted + len(batch), []
        if batch:
            self.datastore.transact_write(batch, f"drop of view {view}")
            deleted += len(batch)
        return deleted


def decode_row(view: str, partition: str, item: Item) -> Row:
    """The row an item holds (see the module docstring for how its data is assembled)."""
    data: dict[str, Any] = loads_data(item[DATA]["S"]) if DATA in item else {}
    sums: list[tuple[str, int | Decimal]] = []
    for attribute, value in item.items():
        if attribute.startswith(SET_FIELD):
            data[attribute[len(SET_FIELD) :]] = loads(value["S"])
        elif attribute.startswith(INT_SUM):
            sums.append((attribute[len(INT_SUM) :], int(value["N"])))
        elif attribute.startswith(DECIMAL_SUM):
            sums.append((attribute[len(DECIMAL_SUM) :], Decimal(value["N"])))
    for name, amount in sums:
        total: JSONLike = data.get(name, 0) + amount
        data[name] = total
    version = int(item[VERSION]["N"]) if VERSION in item else 0
    return Row(view, partition, item["sk"]["S"][1:], data, version)
