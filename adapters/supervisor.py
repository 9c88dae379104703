"""The one supervisor of every long-running worker (indexer, relay, SQS worker, projections).

:class:`Supervisor` calls a worker's ``step`` (one cycle of its work: a poll, a window, a
batch) until its stop event is set, and sorts what a step raises with :func:`is_transient`:

- **transient** (throttling, 5xx, connection resets, timeouts): counted
  (``WorkerTransientErrors``), logged once per episode (the first error, then one line when a
  step succeeds again), and followed by a jittered :class:`~orders.backoff.Backoff` pause cut
  short by a stop request; the worker goes on.
- **permanent** (anything else: access denied, a missing resource, bad configuration, a bug):
  one error line, ``WorkerStopped`` counted and flushed, and :class:`WorkerStoppedError` raised,
  which the CLI's error boundary turns into one line and exit status 1.

:func:`stop_on_signals` sets the stop event on SIGTERM/SIGINT, so the step in hand finishes.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from adapters.observability.telemetry import (
    WORKER_STOPPED,
    WORKER_TRANSIENT_ERRORS,
    MetricsSink,
    NullMetrics,
)
from orders.backoff import Backoff

logger = logging.getLogger(__name__)

PAUSES = Backoff(base=0.2, cap=20.0)
"""Pauses after transient errors: 0.2 s doubling to 20 s, full jitter."""

TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "SlowDown",
        "TransactionInProgressException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
"""Error codes AWS services return for a condition that passes (as botocore's retry modes)."""


def _transient_alone(error: BaseException) -> bool | None:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in TRANSIENT_CODES or status >= 500
    if isinstance(error, BotocoreConnectionError | HTTPClientError):
        return True  # resets, refused connections, read and connect timeouts
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    retryable = getattr(error, "retryable", None)
    return retryable if isinstance(retryable, bool) else None


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (or the first AWS or connection error in its causes) passes by itself."""
    seen: BaseException | None = error
    while seen is not None:
        verdict = _transient_alone(seen)
        if verdict is not None:
            return verdict
        seen = seen.__cause__ or seen.__context__
    return False


class WorkerStoppedError(RuntimeError):
    """A supervised worker stopped on a permanent error; the message names both."""

    def __init__(self, worker: str, error: BaseException) -> None:
        super().__init__(f"{worker} stopped: {type(error).__name__}: {error}")
        self.worker = worker


class Supervisor:
    """Runs one worker's steps until ``stop`` is set (see the module docstring)."""

    def __init__(
        self,
        name: str,
        stop: threading.Event,
        metrics: MetricsSink | None = None,
        backoff: Backoff = PAUSES,
    ) -> None:
        self.name = name
        self.stop = stop
        self.metrics = metrics or NullMetrics()
        self.backoff = backoff
        self.transient_errors = 0
        self.episodes = 0

    def run(self, step: Callable[[], object]) -> None:
        """Call ``step`` until stopped; raises :class:`WorkerStoppedError` on a permanent error."""
        attempt = 0
        while not self.stop.is_set():
            try:
                step()
            except Exception as error:
                if not is_transient(error):
                    self._stopped(error)
                attempt += 1
                self.transient_errors += 1
                self.metrics.count(WORKER_TRANSIENT_ERRORS, Worker=self.name)
                if attempt == 1:
                    self.episodes += 1
                    logger.warning("%s: pausing on transient errors: %s", self.name, error)
                self.backoff.pause(attempt, self.stop.wait)
                continue
            if attempt:
                logger.warning("%s: going on after %d transient errors", self.name, attempt)
                attempt = 0

    def _stopped(self, error: BaseException) -> None:
        logger.error("%s: stopped on a permanent error: %s", self.name, error)
        self.metrics.count(WORKER_STOPPED, Worker=self.name)
        self.metrics.flush()
        raise WorkerStoppedError(self.name, error) from error


@contextmanager
def stop_on_signals(
    stop: threading.Event | None = None, announce: Callable[[str], object] = lambda _: None
) -> Iterator[threading.Event]:
    """A stop event set by SIGTERM or SIGINT while inside (``announce`` gets the signal's
    name); the previous handlers come back on leaving."""
    event = stop or threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def request_stop(signum: int, _: FrameType | None) -> None:
        announce(signal.Signals(signum).name)
        event.set()

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
