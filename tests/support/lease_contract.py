"""The contract every :class:`~adapters.relay.outbox.Lease` keeps; each adapter's test
subclasses it.

Subclass it together with ``unittest.TestCase`` (or a test case that is one) and implement
:meth:`LeaseContract.create_lease`, returning a new handle on the same lease each call (as
another process would have).
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from unittest import TestCase

from adapters.relay.ports import Lease, LeaseTerm

NOW = 1_800_000_000.0
TERM = 30.0


class LeaseContract(TestCase):
    """The behaviour of a lease, whatever keeps it."""

    __test__ = False  # collected through its subclasses only

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.__test__ = True

    @abstractmethod
    def create_lease(self) -> Lease:
        """A handle on this test's lease; every call names the same lease."""

    def test_a_lease_never_held_is_taken_and_shows_its_holder(self) -> None:
        lease = self.create_lease()
        self.assertIsNone(lease.holder())
        self.assertTrue(lease.acquire("a", NOW + TERM, NOW))
        self.assertEqual(self.create_lease().holder(), LeaseTerm("a", NOW + TERM))

    def test_another_owner_cannot_take_it_before_the_term_ends(self) -> None:
        self.create_lease().acquire("a", NOW + TERM, NOW)
        other = self.create_lease()
        self.assertFalse(other.acquire("b", NOW + TERM + 5, NOW + TERM - 1))
        self.assertEqual(other.holder(), LeaseTerm("a", NOW + TERM))

    def test_the_holder_renews_and_the_term_moves(self) -> None:
        lease = self.create_lease()
        lease.acquire("a", NOW + TERM, NOW)
        self.assertTrue(lease.acquire("a", NOW + 2 * TERM, NOW + TERM / 2))
        self.assertEqual(lease.holder(), LeaseTerm("a", NOW + 2 * TERM))
        self.assertFalse(self.create_lease().acquire("b", NOW + 3 * TERM, NOW + TERM + 1))

    def test_after_the_term_another_takes_it_and_the_old_holder_cannot_renew(self) -> None:
        self.create_lease().acquire("a", NOW + TERM, NOW)
        self.assertTrue(self.create_lease().acquire("b", NOW + 2 * TERM + 1, NOW + TERM + 1))
        self.assertFalse(self.create_lease().acquire("a", NOW + 2 * TERM + 2, NOW + TERM + 2))
        self.assertEqual(self.create_lease().holder(), LeaseTerm("b", NOW + 2 * TERM + 1))

    def test_a_release_frees_it_at_once_but_only_the_holder_releases(self) -> None:
        lease = self.create_lease()
        lease.acquire("a", NOW + TERM, NOW)
        self.create_lease().release("b")
        self.assertFalse(self.create_lease().acquire("b", NOW + TERM, NOW + 1))
        lease.release("a")
        self.assertTrue(self.create_lease().acquire("b", NOW + TERM + 2, NOW + 2))

    def test_of_owners_racing_for_a_free_lease_exactly_one_gets_it(self) -> None:
        leases = [self.create_lease() for _ in range(8)]
        start = threading.Barrier(len(leases))
        won: list[str] = []

        def race(index: int, lease: Lease) -> None:
            start.wait()
            if lease.acquire(f"owner-{index}", NOW + TERM, NOW):
                won.append(f"owner-{index}")

        threads = [threading.Thread(target=race, args=item) for item in enumerate(leases)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(len(won), 1, won)
        holder = self.create_lease().holder()
        self.assertIsNotNone(holder)
        assert holder is not None
        self.assertEqual(holder.owner, won[0])
