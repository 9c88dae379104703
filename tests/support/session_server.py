"""One server of a kind per test session: started on first use, stopped once at the end."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Stoppable(Protocol):
    def stop(self) -> None: ...


ServerT = TypeVar("ServerT", bound=Stoppable)


class SessionServer(Generic[ServerT]):
    """The session's server, built by ``start`` on the first :meth:`get` (from any thread);
    every later call returns the same one until :meth:`stop`, which also runs at exit."""

    def __init__(self, start: Callable[[], ServerT]) -> None:
        self._start = start
        self._server: ServerT | None = None
        self._lock = threading.Lock()
        self._stop_registered = False

    def get(self) -> ServerT:
        with self._lock:
            if self._server is None:
                self._server = self._start()
                if not self._stop_registered:
                    atexit.register(self.stop)
                    self._stop_registered = True
            return self._server

    def stop(self) -> None:
        """Stops the server if one was started; safe to call more than once."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop()
