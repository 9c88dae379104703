"""The reusable contract test case of the view-store port (``projections.ports.ViewStore``).

Every view store subclasses :class:`ViewStoreTestCase` (in a ``Test...`` class) and implements
:meth:`ViewStoreTestCase.create_store`; :meth:`ViewStoreTestCase.another_store` may return a
second client of the same data (another connection) for the race test.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from decimal import Decimal
from typing import Any
from unittest import TestCase

from projections.ports import (
    MAX_EXPECTATIONS,
    Add,
    Advance,
    Delete,
    Expect,
    PositionConflictError,
    Put,
    Row,
    RowConflictError,
    ViewLimitError,
    ViewStore,
)

DATA: dict[str, Any] = {
    "text": "ünïcode ✓ and #hash",
    "count": 3,
    "price": Decimal("12.50"),
    "tiny": Decimal("-0.0001"),
    "flag": True,
    "off": False,
    "nothing": None,
    "lines": [{"sku": "BOOK-001", "quantity": 2, "unit_price": Decimal("1.10")}],
    "nested": {"a": [1, "two", Decimal("3.000")]},
}


class ViewStoreTestCase(TestCase):
    """What every view store guarantees (see ``projections.ports``)."""

    store: ViewStore

    @abstractmethod
    def create_store(self) -> ViewStore:
        """A new, empty store for one test."""

    def another_store(self) -> ViewStore:
        """Another client of the same store (its own connection), for the race test."""
        return self.store

    def setUp(self) -> None:
        super().setUp()
        self.store = self.create_store()

    def put(self, partition: str, key: str, version: int = 1, view: str = "v@1") -> Row:
        row = Row(view, partition, key, {"key": key}, version)
        self.store.commit([Put(row)])
        return row

    def test_put_then_get_returns_exactly_what_was_written(self) -> None:
        self.store.commit([Put(Row("v@1", "p#1", "", DATA, 7))])
        row = self.store.get("v@1", "p#1", "")
        assert row == Row("v@1", "p#1", "", DATA, 7)
        assert str(row.data["price"]) == "12.50"
        assert type(row.data["count"]) is int
        assert str(row.data["nested"]["a"][2]) == "3.000"
        assert self.store.get("v@1", "p#1", "other") is None
        assert self.store.get("v@2", "p#1", "") is None

    def test_put_replaces_the_whole_row(self) -> None:
        self.store.commit([Put(Row("v@1", "p", "k", {"a": 1, "b": 2}, 1))])
        self.store.commit([Put(Row("v@1", "p", "k", {"a": 5}, 2))])
        assert self.store.get("v@1", "p", "k") == Row("v@1", "p", "k", {"a": 5}, 2)

    def test_expected_version_zero_means_no_row(self) -> None:
        self.store.commit([Put(Row("v@1", "p", "k", {"a": 1}, 1), expected_version=0)])
        with self.assertRaises(RowConflictError) as caught:
            self.store.commit([Put(Row("v@1", "p", "k", {"a": 2}, 2), expected_version=0)])
        assert (caught.exception.expected, caught.exception.actual) == (0, 1)
        assert (caught.exception.view, caught.exception.partition, caught.exception.key) == (
            "v@1",
            "p",
            "k",
        )
        assert self.store.get("v@1", "p", "k") == Row("v@1", "p", "k", {"a": 1}, 1)

    def test_expected_version_must_match_the_stored_one(self) -> None:
        self.put("p", "k", version=3)
        self.store.commit([Put(Row("v@1", "p", "k", {"a": 4}, 4), expected_version=3)])
        with self.assertRaises(RowConflictError) as caught:
            self.store.commit([Put(Row("v@1", "p", "k", {"a": 5}, 5), expected_version=3)])
        assert (caught.exception.expected, caught.exception.actual) == (3, 4)
        with self.assertRaises(RowConflictError):
            self.store.commit([Put(Row("v@1", "p", "new", {}, 1), expected_version=1)])
        assert self.store.get("v@1", "p", "new") is None

    def test_a_failed_condition_writes_nothing_of_the_commit(self) -> None:
        self.put("p", "a", version=1)
        self.store.commit([], Advance("pos", None, 5))
        with self.assertRaises(RowConflictError):
            self.store.commit(
                [
                    Put(Row("v@1", "p", "b", {"b": 1}, 1)),
                    Add("v@1", "p", "c", {"n": 1}),
                    Delete("v@1", "p", "a"),
                    Put(Row("v@1", "p", "d", {}, 1), expected_version=9),
                ],
                Advance("pos", 5, 9),
            )
        assert self.store.get("v@1", "p", "a") is not None
        assert self.store.get("v@1", "p", "b") is None
        assert self.store.get("v@1", "p", "c") is None
        assert self.store.position("pos") == 5

    def test_delete_with_and_without_condition(self) -> None:
        self.store.commit([Delete("v@1", "p", "absent")])
        self.put("p", "k", version=2)
        with self.assertRaises(RowConflictError):
            self.store.commit([Delete("v@1", "p", "k", expected_version=1)])
        assert self.store.get("v@1", "p", "k") is not None
        self.store.commit([Delete("v@1", "p", "k", expected_version=2)])
        assert self.store.get("v@1", "p", "k") is None

    def test_add_creates_the_row_and_adds_exactly(self) -> None:
        data = {"currency": "EUR"}
        self.store.commit([Add("v@1", "t", "EUR", {"orders": 1, "total": Decimal("12.50")}, data)])
        self.store.commit([Add("v@1", "t", "EUR", {"orders": 2, "total": Decimal("0.01")}, data)])
        self.store.commit([Add("v@1", "t", "EUR", {"orders": -1, "total": Decimal("-2.50")})])
        row = self.store.get("v@1", "t", "EUR")
        assert row is not None
        assert row.data == {"orders": 2, "total": Decimal("10.01"), "currency": "EUR"}
        assert type(row.data["orders"]) is int
        assert isinstance(row.data["total"], Decimal)
        assert row.version == 0
        total = Decimal(0)
        for _ in range(30):  # 0.1 thirty times: exact where a float would drift
            self.store.commit([Add("v@1", "t", "sum", {"total": Decimal("0.1")})])
            total += Decimal("0.1")
        summed = self.store.get("v@1", "t", "sum")
        assert summed is not None and summed.data["total"] == Decimal("3")

    def test_add_to_a_written_row_adds_to_its_fields_and_keeps_its_version(self) -> None:
        self.store.commit([Put(Row("v@1", "p", "k", {"n": 5, "name": "x"}, 4))])
        self.store.commit([Add("v@1", "p", "k", {"n": 2, "m": Decimal("1.5")}, {"name": "y"})])
        assert self.store.get("v@1", "p", "k") == Row(
            "v@1", "p", "k", {"n": 7, "m": Decimal("1.5"), "name": "y"}, 4
        )
        self.store.commit([Put(Row("v@1", "p", "k", {"n": 1}, 5), expected_version=4)])
        assert self.store.get("v@1", "p", "k") == Row("v@1", "p", "k", {"n": 1}, 5)

    def test_positions_advance_only_from_the_value_read(self) -> None:
        assert self.store.position("runner") is None
        self.store.commit([], Advance("runner", None, 10))
        assert self.store.position("runner") == 10
        with self.assertRaises(PositionConflictError) as caught:
            self.store.commit([Put(Row("v@1", "p", "k", {}, 1))], Advance("runner", None, 20))
        assert (caught.exception.expected, caught.exception.actual) == (None, 10)
        with self.assertRaises(PositionConflictError) as caught:
            self.store.commit([], Advance("runner", 9, 20))
        assert caught.exception.actual == 10
        assert self.store.get("v@1", "p", "k") is None
        self.store.commit([Put(Row("v@1", "p", "k", {}, 1))], Advance("runner", 10, 20))
        assert self.store.position("runner") == 20
        assert self.store.position("other") is None

    def test_two_changes_of_one_row_are_refused(self) -> None:
        row = Row("v@1", "p", "k", {}, 1)
        with self.assertRaises(ValueError):
            self.store.commit([Put(row), Add("v@1", "p", "k", {"n": 1})])
        assert self.store.get("v@1", "p", "k") is None

    def test_too_many_changes_are_refused_before_anything_is_written(self) -> None:
        count = self.store.max_changes_per_commit + 1
        changes = [Put(Row("v@1", "p", f"{n:05}", {}, 1)) for n in range(count)]
        with self.assertRaises(ViewLimitError):
            self.store.commit(changes, Advance("pos", None, 1))
        assert self.store.query("v@1", "p").rows == []
        assert self.store.position("pos") is None

    def test_the_most_changes_allowed_commit_together(self) -> None:
        count = self.store.max_changes_per_commit
        changes = [Put(Row("v@1", "p", f"{n:05}", {"n": n}, 1)) for n in range(count)]
        expect = [Expect(f"other-{n}", None) for n in range(MAX_EXPECTATIONS)]
        self.store.commit(changes, Advance("pos", None, count), expect)
        assert len(self.store.query("v@1", "p").rows) == count
        assert self.store.position("pos") == count

    def test_a_commit_applies_only_while_every_expected_position_holds(self) -> None:
        self.store.commit([], Advance("live", None, 2))
        row = Row("v@2", "p", "k", {"n": 1}, 1)
        for expect, failed in (
            ([Expect("live", 1)], ("live", 1, 2)),
            ([Expect("live", 2), Expect("revision", 0)], ("revision", 0, None)),
            ([Expect("live", None)], ("live", None, 2)),
        ):
            with self.assertRaises(PositionConflictError) as caught:
                self.store.commit([Put(row)], Advance("runner", None, 1), expect)
            error = caught.exception
            assert (error.name, error.expected, error.actual) == failed
            assert self.store.get("v@2", "p", "k") is None
            assert self.store.position("runner") is None
        self.store.commit([Put(row)], Advance("runner", None, 1), [Expect("live", 2)])
        self.store.commit([], expect=[Expect("live", 2), Expect("revision", None)])
        with self.assertRaises(PositionConflictError):
            self.store.commit([], expect=[Expect("live", 3)])
        assert self.store.get("v@2", "p", "k") == row
        assert (self.store.position("runner"), self.store.position("live")) == (1, 2)
        assert self.store.position("revision") is None

    def test_query_reads_one_partition_in_key_order_a_page_at_a_time(self) -> None:
        for key in ("b", "a", "d", "c", "e"):
            self.put("p", key)
        self.put("p2", "a")
        self.put("p", "z", view="other@1")
        page = self.store.query("v@1", "p")
        assert [row.key for row in page.rows] == ["a", "b", "c", "d", "e"]
        assert page.next_key is None
        page = self.store.query("v@1", "p", limit=2)
        assert ([row.key for row in page.rows], page.next_key) == (["a", "b"], "b")
        page = self.store.query("v@1", "p", limit=2, after="b")
        assert ([row.key for row in page.rows], page.next_key) == (["c", "d"], "d")
        page = self.store.query("v@1", "p", limit=2, after="d")
        assert ([row.key for row in page.rows], page.next_key) == (["e"], None)
        page = self.store.query("v@1", "p", limit=5)
        assert (len(page.rows), page.next_key) == (5, None)
        page = self.store.query("v@1", "p", descending=True, limit=3)
        assert ([row.key for row in page.rows], page.next_key) == (["e", "d", "c"], "c")
        page = self.store.query("v@1", "p", descending=True, after="c")
        assert [row.key for row in page.rows] == ["b", "a"]
        assert self.store.query("v@1", "nothing").rows == []
        assert page.rows[0] == Row("v@1", "p", "b", {"key": "b"}, 1)

    def test_drop_deletes_every_row_of_one_view_only(self) -> None:
        for partition in ("p1", "p2"):
            for key in ("a", "b"):
                self.put(partition, key, view="v@1")
                self.put(partition, key, view="v@2")
        self.store.commit([Add("v@1", "t", "x", {"n": 1})], Advance("v@1", None, 3))
        assert self.store.drop("v@1") == 5
        assert self.store.query("v@1", "p1").rows == []
        assert self.store.get("v@1", "t", "x") is None
        assert len(self.store.query("v@2", "p1").rows) == 2
        assert self.store.position("v@1") == 3
        assert self.store.drop("v@1") == 0

    def test_of_racing_advances_from_one_value_exactly_one_wins(self) -> None:
        stores = [self.store, self.another_store()] * 3
        barrier = threading.Barrier(len(stores))
        outcomes: list[str] = []

        def race(number: int, store: ViewStore) -> None:
            barrier.wait()
            try:
                store.commit(
                    [Add("v@1", "t", "count", {"n": 1}), Put(Row("v@1", "w", str(number), {}, 1))],
                    Advance("race", None, number),
                )
            except PositionConflictError:
                outcomes.append("lost")
            else:
                outcomes.append("won")

        threads = [
            threading.Thread(target=race, args=(number, store))
            for number, store in enumerate(stores, start=1)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["lost"] * (len(stores) - 1) + ["won"]
        counted = self.store.get("v@1", "t", "count")
        assert counted is not None and counted.data == {"n": 1}
        winner = self.store.position("race")
        assert [row.key for row in self.store.query("v@1", "w").rows] == [str(winner)]
