"""The contract every :class:`~projections.parking.ParkingLot` keeps; each adapter's test
subclasses it.

Subclass it together with ``unittest.TestCase`` (or a test case that is one) and implement
:meth:`ParkingContract.create_lot`, returning a new handle on the same worker's lot each call
(as another process would have); ``create_lot("other")`` names another worker's.
"""

from __future__ import annotations

from abc import abstractmethod
from unittest import TestCase

from projections.parking import NotParkedError, ParkingLot, Request

WORKER = "worker-1"


class ParkingContract(TestCase):
    """The behaviour of a parking lot, whatever keeps it."""

    __test__ = False  # collected through its subclasses only

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.__test__ = True

    @abstractmethod
    def create_lot(self, worker: str = WORKER) -> ParkingLot:
        """A handle on the lot of ``worker``; every call with one name names the same lot."""

    def test_a_parked_order_is_listed_with_its_events_in_order_and_its_reason(self) -> None:
        lot = self.create_lot()
        self.assertEqual(lot.parked(), [])
        lot.park("order-b", [7], "too big")
        lot.park("order-a", [3], "malformed")
        lot.park("order-b", [7, 9, 12], "too big")

        parked = self.create_lot().parked()

        self.assertEqual([p.order_id for p in parked], ["order-a", "order-b"])  # by first id
        self.assertEqual(parked[1].notification_ids, (7, 9, 12))
        self.assertEqual(
            (parked[1].reason, parked[1].request, parked[1].note), ("too big", None, None)
        )
        self.assertEqual(self.create_lot("other").parked(), [])

    def test_a_request_is_kept_by_later_parking_unless_cleared(self) -> None:
        lot = self.create_lot()
        lot.park("order-a", [3], "malformed")

        asked = self.create_lot().ask("order-a", Request.SKIP, "refunded by hand")
        lot.park("order-a", [3, 5], "malformed")

        self.assertEqual((asked.request, asked.note), (Request.SKIP, "refunded by hand"))
        (kept,) = lot.parked()
        self.assertEqual(
            (kept.request, kept.note, kept.notification_ids),
            (Request.SKIP, "refunded by hand", (3, 5)),
        )
        lot.park("order-a", [5], "still malformed", keep_request=False)
        (cleared,) = lot.parked()
        self.assertEqual(
            (cleared.request, cleared.note, cleared.reason), (None, None, "still malformed")
        )
        self.assertEqual(cleared.parked_at, kept.parked_at)

    def test_asking_about_an_order_not_parked_is_refused(self) -> None:
        with self.assertRaises(NotParkedError):
            self.create_lot().ask("order-x", Request.RETRY)
        self.create_lot("other").park("order-x", [1], "bad")
        with self.assertRaises(NotParkedError):
            self.create_lot().ask("order-x", Request.RETRY)

    def test_a_release_forgets_the_order_and_a_skip_is_recorded_with_its_reason(self) -> None:
        lot = self.create_lot()
        lot.park("order-a", [3, 4], "malformed")
        lot.park("order-b", [5], "too big")

        lot.release("order-a")
        lot.release("order-b", skipped="customer refunded")
        lot.release("order-c")  # not parked: nothing

        self.assertEqual(self.create_lot().parked(), [])
        (skipped,) = self.create_lot().skipped()
        self.assertEqual(
            (skipped.order_id, skipped.notification_ids, skipped.reason, skipped.note),
            ("order-b", (5,), "too big", "customer refunded"),
        )
        self.assertEqual(self.create_lot("other").skipped(), [])

    def test_an_order_released_can_be_parked_again(self) -> None:
        lot = self.create_lot()
        lot.park("order-a", [3], "malformed")
        lot.release("order-a", skipped="dropped")
        lot.park("order-a", [8], "malformed again")
        lot.release("order-a", skipped="dropped again")
        self.assertEqual([s.note for s in lot.skipped()], ["dropped", "dropped again"])
