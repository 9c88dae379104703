"""The view-store port: where read models keep their rows and their positions in the log.

A view store holds rows of many views. A row is addressed by ``(view, partition, key)``:
``view`` names one generation of one read model (``"order_summary@2"``), ``partition`` groups
the rows one query reads (``"customer#c-1"``), ``key`` orders them within it. Queries read one
partition, in key order or reversed, a page at a time: no query ever reads the whole store.

Every write goes through :meth:`ViewStore.commit`, which applies a batch of changes and,
optionally, advances a position, **atomically**: all of it or nothing. Each change may carry a
condition on the row's stored ``version`` (optimistic concurrency, and the "skip duplicates"
check of at-least-once consumers); the position advances only from the value the committer
read (so of two runners of one projection, only one advances; the other gets
:class:`PositionConflictError` and nothing of its batch is written); and a commit may
:class:`Expect` other positions to hold the values it read, without writing them (a runner
expects its generation still to be the live one and the view's repair revision unchanged, so a
switch or a repair in between fails its batch whole instead of writing beside them).

Values in ``Row.data`` are JSON-like: ``str``, ``int``, ``Decimal`` (exact, never float),
``bool``, ``None``, and lists and string-keyed dicts of those. A store returns exactly what
was written (a ``Decimal("12.50")`` comes back as ``Decimal("12.50")``, an ``int`` as ``int``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

JSONLike = Any
"""A value of ``Row.data``: see the module docstring for what a store must round-trip."""

MAX_EXPECTATIONS = 2
"""The expectations a commit of ``max_changes_per_commit`` changes may carry beside its advance."""


class ViewStoreError(Exception):
    """Base of the errors a view store raises on purpose; nothing was written."""


class RowConflictError(ViewStoreError):
    """A change's ``expected_version`` did not match the stored row; nothing was written.

    ``view``, ``partition``, ``key`` name the row; ``expected`` is the version the change
    expected (0: no row), ``actual`` the version stored (0: no row; ``None``: unknown).
    """

    def __init__(
        self, view: str, partition: str, key: str, expected: int, actual: int | None
    ) -> None:
        super().__init__(
            f"view {view} row {partition}/{key}: expected version {expected}, found {actual}"
        )
        self.view = view
        self.partition = partition
        self.key = key
        self.expected = expected
        self.actual = actual


class PositionConflictError(ViewStoreError):
    """The position moved since the committer read it (another runner advanced it).

    ``name`` is the position's name, ``expected`` what the commit started from, ``actual`` what
    was found (``None``: unknown). Nothing of the commit was written.
    """

    def __init__(self, name: str, expected: int | None, actual: int | None) -> None:
        super().__init__(
            f"position {name}: expected {expected}, found {actual} (another runner advanced it)"
        )
        self.name = name
        self.expected = expected
        self.actual = actual


class ViewLimitError(ViewStoreError):
    """A commit breaks one of the store's limits (changes per commit, row size); not sent."""


@dataclass(frozen=True)
class Row:
    """One row of a view. ``version`` is the writer's own counter (for example the last
    stream version applied to it); 0 for a row that tracks none."""

    view: str
    partition: str
    key: str
    data: Mapping[str, JSONLike]
    version: int = 0


@dataclass(frozen=True)
class Put:
    """Write ``row`` whole. With ``expected_version`` set, only if the stored row's version
    equals it (0: only if there is no row)."""

    row: Row
    expected_version: int | None = None


@dataclass(frozen=True)
class Delete:
    """Delete a row (absent: no-op), optionally only if its version is ``expected_version``."""

    view: str
    partition: str
    key: str
    expected_version: int | None = None


@dataclass(frozen=True)
class Add:
    """Add ``deltas`` to numeric fields of a row, creating the row (fields from 0) if absent.

    Exact: ``Decimal`` deltas add as ``Decimal``, ``int`` as ``int``; a ``Decimal`` sum is equal
    in value to the exact sum, but a store may drop its trailing zeros (DynamoDB keeps numbers
    without them: 12.50 + 1.00 reads back as ``Decimal("13.5")``). ``data`` fields that are
    not deltas are set as given (for example a currency code beside its total). The row's
    version is left as it is (0 for a new row).
    """

    view: str
    partition: str
    key: str
    deltas: Mapping[str, int | Decimal]
    data: Mapping[str, JSONLike] = field(default_factory=dict)


Change = Put | Delete | Add


@dataclass(frozen=True)
class Advance:
    """Move position ``name`` from ``expected`` (``None``: never recorded) to ``to``."""

    name: str
    expected: int | None
    to: int


@dataclass(frozen=True)
class Expect:
    """Position ``name`` must be ``value`` (``None``: never recorded); it is not written."""

    name: str
    value: int | None


@dataclass(frozen=True)
class Page:
    """Rows of one partition, and where the next page starts (``None``: no more rows)."""

    rows: Sequence[Row]
    next_key: str | None


class ViewStore(ABC):
    """Rows of views and named positions; see the module docstring for the guarantees."""

    max_changes_per_commit: int
    """The most changes one :meth:`commit` with an advance and up to
    :data:`MAX_EXPECTATIONS` expectations takes (DynamoDB: 97, a transaction's 100 actions
    less those three). A caller with more splits them, each part with its own position."""

    @abstractmethod
    def commit(
        self,
        changes: Sequence[Change],
        advance: Advance | None = None,
        expect: Sequence[Expect] = (),
    ) -> None:
        """Apply ``changes`` in order and ``advance`` the position, atomically, if every
        position in ``expect`` holds its value.

        Two changes of one commit may not address the same row (``ValueError``: coalesce them
        first). Raises :class:`RowConflictError` or :class:`PositionConflictError` (naming the
        advanced or the expected position) when a condition fails, :class:`ViewLimitError`
        when a limit is broken; nothing is written in any of those cases.
        """

    @abstractmethod
    def get(self, view: str, partition: str, key: str) -> Row | None:
        """The row, read strongly consistent, or None."""

    @abstractmethod
    def query(
        self,
        view: str,
        partition: str,
        *,
        descending: bool = False,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page:
        """Rows of one partition in key order (reversed if ``descending``), strongly
        consistent, starting after key ``after``, at most ``limit`` of them."""

    @abstractmethod
    def position(self, name: str) -> int | None:
        """The position recorded under ``name``, or None if never recorded."""

    @abstractmethod
    def drop(self, view: str) -> int:
        """Delete every row of ``view`` (a retired generation); the number deleted.

        Not atomic and may be slow; safe to run again after a crash.
        """
