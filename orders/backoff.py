"""The one pause policy of every retry loop of ours: capped exponential backoff, full jitter.

A loop that tries again (a lost race, a throttled call, a worker's transient error) asks its
:class:`Backoff` how long to wait before try ``attempt`` (1 for the first retry). The ceiling
doubles per attempt up to ``cap``; the pause is drawn uniformly below it ("full jitter", as
AWS's architecture guidance recommends), so many processes that failed together do not retry
together. :meth:`Backoff.pause` waits through a function the caller gives (``time.sleep``, or a
``threading.Event.wait`` that a stop request cuts short). Nothing here holds a lock: a caller
must not pause while it holds one that other saves need.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Pauses of at most ``base * 2 ** (attempt - 1)`` seconds, never more than ``cap``."""

    base: float = 0.05
    cap: float = 5.0

    def ceiling(self, attempt: int) -> float:
        """The longest pause before try ``attempt`` (1 for the first retry)."""
        return min(self.cap, self.base * 2.0 ** max(0, min(attempt - 1, 60)))

    def delay(self, attempt: int) -> float:
        """A pause drawn uniformly in ``[0, ceiling(attempt)]``."""
        return random.uniform(0, self.ceiling(attempt))

    def pause(self, attempt: int, wait: Callable[[float], object] = time.sleep) -> float:
        """Wait :meth:`delay` seconds through ``wait``; returns the pause drawn."""
        seconds = self.delay(attempt)
        if seconds > 0:
            wait(seconds)
        return seconds
