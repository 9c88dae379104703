"""What every ``orders`` command shares: the settings the root command read, and the helpers
that build from them. The root command (``adapters.cli.main``) stores a :class:`Runtime` in the
click context; subcommands ask :func:`runtime_of` for it, so no command module imports another.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from uuid import UUID

import typer

from adapters.bootstrap.projections import view_store
from adapters.bootstrap.service import order_service
from adapters.local.backend import EVENTS_FILE_NAME
from adapters.observability.telemetry import MetricsSink, NullMetrics
from adapters.settings import Backend, Settings
from orders import OrderNotFoundError, OrderService
from projections.ports import ViewStore


@dataclass
class Backends:
    """The service and view store the settings chose."""

    service: OrderService
    store: ViewStore


@dataclass
class Runtime:
    """The settings of this invocation and where its commands report metrics (flushed when
    the command ends)."""

    settings: Settings
    metrics: MetricsSink = field(default_factory=NullMetrics)

    def service(self) -> OrderService:
        """The ``OrderService`` on the chosen backend, reporting to ``metrics`` if they are on."""
        return order_service(self.settings, self.metrics)

    def existing_service(self, order_id: UUID) -> OrderService:
        """The service, to act on ``order_id``; on the local backend with nothing stored yet,
        ``OrderNotFoundError`` without creating any file."""
        settings = self.settings
        if (
            settings.backend is Backend.LOCAL
            and not (settings.local_data_dir / EVENTS_FILE_NAME).exists()
        ):
            raise OrderNotFoundError(order_id)
        return self.service()

    def backends(self) -> Backends:
        service = self.service()
        return Backends(service, view_store(self.settings, service))


def runtime_of(context: typer.Context) -> Runtime:
    """The runtime the root command built (the root context holds it)."""
    runtime: Runtime = context.find_root().obj
    return runtime


def backends(context: typer.Context) -> Backends:
    """The service and view store of the chosen backend."""
    return runtime_of(context).backends()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or Ctrl-C (SIGINT), for a worker to stop cleanly."""
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
