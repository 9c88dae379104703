"""How projections run: view stores per backend, the long-lived worker loop, and what one
invocation of the projections Lambda does.

- Local backend: views in ``views.sqlite3`` beside the events file, in-process runners.
- DynamoDB: views in their own table (the ``views_table`` setting, default
  ``<events table>-views``; created if missing with ``create_tables``), through the event
  store's client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from adapters.dynamodb import DynamoDBDatastore, DynamoDBFactory
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.local.views import SQLiteViewStore
from adapters.observability.telemetry import (
    PARKED_ORDERS,
    PROJECTION_LAG,
    MetricsSink,
)
from adapters.settings import Backend, Settings
from adapters.supervisor import PAUSES, Supervisor, WorkerStoppedError
from orders import OrderService
from orders.backoff import Backoff
from projections.memory import InMemoryViewStore
from projections.ports import ViewStore
from projections.runtime import Runner
from projections.views import PROJECTIONS, projection_named

VIEWS_FILE_NAME = "views.sqlite3"
LAG_REPORT_SECONDS = 60.0


def sqlite_view_store(data_dir: Path) -> SQLiteViewStore:
    """The local backend's view store, in ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return SQLiteViewStore(data_dir / VIEWS_FILE_NAME)


def dynamodb_view_store(
    service: OrderService, table: str, *, create: bool = False
) -> DynamoDBViewStore:
    """The view store of a service on DynamoDB: the views' own ``table``, the service's
    client and metrics (two metrics attached to one client would each count every call)."""
    factory = service.factory
    if not isinstance(factory, DynamoDBFactory):
        msg = "the service does not run on the DynamoDB persistence module"
        raise TypeError(msg)
    datastore = factory.datastore
    store = DynamoDBViewStore(DynamoDBDatastore(datastore.client, table, metrics=datastore.metrics))
    if create:
        store.create_table_if_missing()
    return store


def view_store(settings: Settings, service: OrderService) -> ViewStore:
    """The read models' store of the configured backend (``service`` runs on the same)."""
    if settings.backend is Backend.DYNAMODB:
        return dynamodb_view_store(
            service, settings.views_table_name, create=settings.create_tables
        )
    if settings.backend is Backend.MEMORY:
        return InMemoryViewStore()
    return sqlite_view_store(settings.local_data_dir)


def runners(
    service: OrderService,
    store: ViewStore,
    names: Iterable[str] = (),
    **options: Any,
) -> list[Runner]:
    """A live runner per projection named (all if none), on ``service``'s log."""
    chosen = [projection_named(name) for name in names] or list(PROJECTIONS.values())
    decode = service.mapper.to_domain_event
    return [Runner(p, store, service.recorder, decode, **options) for p in chosen]


def report_lag(workers: list[Runner], metrics: MetricsSink) -> None:
    """Gauge each projection's lag (notifications between its position and the log head) and
    the orders it parked."""
    for runner in workers:
        progress = runner.progress()
        lag = progress.head - progress.position
        metrics.gauge(PROJECTION_LAG, lag, Projection=runner.projection.name)
        metrics.gauge(PARKED_ORDERS, len(runner.parking().parked()))


def run_worker(
    workers: list[Runner],
    stop: threading.Event,
    poll_interval: float = 0.2,
    metrics: MetricsSink | None = None,
    backoff: Backoff = PAUSES,
) -> None:
    """Follow the log with every runner, each in a thread of its own (their reads and writes
    overlap) under its own :class:`~adapters.supervisor.Supervisor`, until ``stop`` is set;
    idle ones wait ``poll_interval``. Each batch commits whole, so stopping loses nothing.
    A transient error pauses that runner alone; a permanent one stops that runner alone (the
    others go on) and is raised here, as :class:`WorkerStoppedError`, once ``stop`` is set or
    every runner has stopped. With ``metrics``, reports the projections' lag once a minute
    and flushes them when stopped.
    """
    failures: list[WorkerStoppedError] = []

    def follow(runner: Runner) -> None:
        def step() -> None:
            if runner.run_once() == 0:
                stop.wait(poll_interval)

        name = f"projection {runner.projection.name}"
        try:
            Supervisor(name, stop, metrics, backoff).run(step)
        except WorkerStoppedError as error:
            failures.append(error)

    threads = [
        threading.Thread(target=follow, args=(runner,), name=runner.projection.name)
        for runner in workers
    ]
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            if metrics is not None:
                report_lag(workers, metrics)
                metrics.flush()
            if stop.wait(LAG_REPORT_SECONDS if metrics is not None else poll_interval * 10):
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        if metrics is not None:
            metrics.flush()
    if failures:
        raise failures[0]


def process_new(workers: list[Runner], seconds_left: float) -> dict[str, int]:
    """Process what is new for the runners in turns (one read of the log each, round robin)
    until every one is caught up or ``seconds_left`` runs out, so a backlog in one never
    takes the whole invocation; the notifications processed per projection."""
    deadline = time.monotonic() + seconds_left
    processed = {runner.projection.name: 0 for runner in workers}
    pending = list(workers)
    while pending and time.monotonic() < deadline:
        for runner in list(pending):
            conflicts = runner.conflicts
            count = runner.run_once()
            processed[runner.projection.name] += count
            if count == 0 and runner.conflicts == conflicts:  # caught up, not a lost race
                pending.remove(runner)
            if time.monotonic() >= deadline:
                break
    return processed
