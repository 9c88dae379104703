"""Generations of a view (blue/green), and waiting for a view to catch up.

The rows of projection ``name`` at generation ``g`` live in view ``name@g``, tracked by the
position of the same name. Readers use the live generation, the position ``name.live``
(absent: 1); a rebuild fills generation ``name.next`` and switches ``name.live`` to it in one
conditional write (see :mod:`projections.rebuild`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from uuid import UUID

from projections.ports import ViewStore

if TYPE_CHECKING:
    from projections.rows import Projection


def view_name(projection: str, generation: int) -> str:
    """The view (and position) name of ``projection`` at ``generation``."""
    return f"{projection}@{generation}"


def live_pointer(projection: str) -> str:
    """The position naming the generation readers use."""
    return f"{projection}.live"


def next_pointer(projection: str) -> str:
    """The position naming the generation a rebuild fills (equal to live when none is running)."""
    return f"{projection}.next"


DROPPED = -1
"""The position of a dropped generation (its tombstone): a runner's advance never starts from it."""


def revision_pointer(view: str) -> str:
    """The position counting the repairs of ``view`` (absent: none yet)."""
    return f"{view}.revision"


def live_generation(store: ViewStore, projection: str) -> int:
    """The generation readers use: ``projection.live``, or 1 before any rebuild."""
    return store.position(live_pointer(projection)) or 1


class NotCaughtUpError(TimeoutError):
    """A view did not reach what a caller waited for within the timeout; nothing stale was
    returned. ``view`` names it, ``wanted`` and ``reached`` say how far it was."""

    def __init__(self, view: str, wanted: str, reached: str, timeout: float) -> None:
        super().__init__(
            f"view {view} has not processed {wanted} after {timeout:g} s (it is at {reached}); "
            "is a projection runner running (orders projections run)?"
        )
        self.view = view


def wait_for_notification(
    store: ViewStore,
    projection: str,
    notification_id: int,
    timeout: float,
    interval: float = 0.02,
) -> int:
    """Wait until the live generation of ``projection`` has processed ``notification_id``;
    returns that generation (query it). Raises :class:`NotCaughtUpError` past ``timeout``."""
    return _wait_until(
        store,
        projection,
        lambda view: store.position(view) or 0,
        notification_id,
        wanted=f"notification {notification_id}",
        unit="notification",
        timeout=timeout,
        interval=interval,
    )


def wait_for_order(
    store: ViewStore,
    projection: Projection,
    order_id: UUID,
    version: int,
    *,
    timeout: float,
    interval: float = 0.02,
) -> int:
    """Wait until the live generation of ``projection`` has applied ``order_id`` up to
    ``version`` (what a command returned; works when notification ids are assigned later);
    returns that generation. Raises :class:`NotCaughtUpError` past ``timeout``."""
    partition, key = projection.order_row(order_id)

    def applied_version(view: str) -> int:
        row = store.get(view, partition, key)
        return row.version if row else 0

    return _wait_until(
        store,
        projection.name,
        applied_version,
        version,
        wanted=f"order {order_id} version {version}",
        unit="version",
        timeout=timeout,
        interval=interval,
    )


def _wait_until(
    store: ViewStore,
    projection: str,
    reached_in: Callable[[str], int],
    target: int,
    *,
    wanted: str,
    unit: str,
    timeout: float,
    interval: float,
) -> int:
    """Poll the live generation until ``reached_in(view) >= target``; its generation.

    The live generation is read again on each poll, so a switch to a rebuilt one is followed.
    """
    deadline = time.monotonic() + timeout
    while True:
        generation = live_generation(store, projection)
        view = view_name(projection, generation)
        reached = reached_in(view)
        if reached >= target:
            return generation
        if time.monotonic() >= deadline:
            raise NotCaughtUpError(view, wanted, f"{unit} {reached}", timeout)
        time.sleep(interval)
