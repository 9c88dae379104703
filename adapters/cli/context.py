"""What every ``orders`` command shares: the settings the root command read, and the helpers
that build from them. The root command (``adapters.cli.main``) stores a :class:`Runtime` in the
click context; subcommands ask :func:`runtime_of` for it, so no command module imports another.
Starting stays cheap: what a backend needs is imported when a command asks for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import typer

from adapters.cli.errors import DataDirError

if TYPE_CHECKING:
    from adapters.observability.telemetry import MetricsSink
    from adapters.settings import Settings
    from orders import OrderService
    from projections.ports import ViewStore

SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass
class Backends:
    """The service and view store the settings chose."""

    service: OrderService
    store: ViewStore


def _null_metrics() -> MetricsSink:
    from adapters.observability.telemetry import NullMetrics  # noqa: PLC0415

    return NullMetrics()


@dataclass
class Runtime:
    """The settings of this invocation and where its commands report metrics (flushed when
    the command ends)."""

    settings: Settings
    metrics: MetricsSink = field(default_factory=_null_metrics)

    @property
    def local(self) -> bool:
        return self.settings.backend.value == "local"

    @property
    def data_dir(self) -> Path:
        return self.settings.local_data_dir

    def service(self) -> OrderService:
        """The ``OrderService`` on the chosen backend, reporting to ``metrics`` if they are on.

        On the local backend the data directory is checked first (:meth:`check_data_dir`)."""
        from adapters.bootstrap.service import order_service  # noqa: PLC0415

        if self.local:
            self.check_data_dir(create=True)
        return order_service(self.settings, self.metrics)

    def existing_service(self, order_id: UUID | None = None) -> OrderService:
        """The service, to read what is stored. On the local backend, a data directory that
        holds no orders (missing, or no events file) is a ``DataDirError`` saying so (and naming
        ``order_id``, if given, as not found), and no file is created."""
        if self.local:
            from adapters.local.backend import EVENTS_FILE_NAME  # noqa: PLC0415

            wanted = f"order {order_id} not found: " if order_id else ""
            if not self.data_dir.exists():
                raise DataDirError(f"{wanted}--data-dir {self.data_dir} does not exist")
            self.check_data_dir(create=False)
            if not (self.data_dir / EVENTS_FILE_NAME).exists():
                msg = f"{wanted}--data-dir {self.data_dir} holds no orders (no {EVENTS_FILE_NAME})"
                raise DataDirError(msg)
        return self.service()

    def check_data_dir(self, *, create: bool) -> None:
        """Refuse a data directory that cannot work, naming the path, before any file is made.

        A missing directory is created only when ``create`` (a command that writes) and its
        parent exists; a path that is a file, a directory that is not writable, or an SQLite
        file in it that is not a database, is a ``DataDirError``.
        """
        directory = self.data_dir
        if directory.exists() and not directory.is_dir():
            raise DataDirError(f"--data-dir {directory} is a file, not a directory")
        if not directory.exists():
            if not create:
                raise DataDirError(f"--data-dir {directory} does not exist")
            if not directory.parent.is_dir():
                msg = f"--data-dir {directory}: its parent {directory.parent} does not exist"
                raise DataDirError(msg)
            return
        for path in sorted(directory.glob("*.sqlite3")):
            _check_sqlite_file(path)
        if create and not os.access(directory, os.W_OK | os.X_OK):
            raise DataDirError(f"--data-dir {directory} is read-only")

    def backends(self, *, reading: bool = False, order_id: UUID | None = None) -> Backends:
        """The service (an existing one when ``reading``) and the view store of the backend."""
        from adapters.bootstrap.projections import view_store  # noqa: PLC0415

        service = self.existing_service(order_id) if reading else self.service()
        return Backends(service, view_store(self.settings, service))


def _check_sqlite_file(path: Path) -> None:
    if not path.is_file():
        raise DataDirError(f"{path} is not a file")
    if not os.access(path, os.R_OK):
        raise DataDirError(f"{path} is not readable")
    with path.open("rb") as file:
        header = file.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        raise DataDirError(f"{path} is not an SQLite database (corrupt or another file)")
    if not os.access(path, os.W_OK):
        raise DataDirError(f"{path} is read-only")


def runtime_of(context: typer.Context) -> Runtime:
    """The runtime the root command built (the root context holds it)."""
    runtime: Runtime = context.find_root().obj
    return runtime


def backends(
    context: typer.Context, *, reading: bool = False, order_id: UUID | None = None
) -> Backends:
    """The service and view store of the chosen backend."""
    return runtime_of(context).backends(reading=reading, order_id=order_id)
