"""How projections run: view stores per backend, the long-lived worker loop, and a Lambda handler.

- Local backend: views in ``views.sqlite3`` beside the events file, in-process runners.
- DynamoDB: views in their own table, ``$ORDERS_VIEWS_TABLE`` or ``<events table>-views``
  (created if missing when ``DYNAMODB_CREATE_TABLE=y``), through the event store's client.
- :func:`handler`: an AWS Lambda handler (scheduled, or fired by the table's stream) that
  processes what is new in the log for every projection and returns; the next invocation
  resumes from the tracked positions.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from eventsourcing.utils import strtobool

from adapters.dynamodb import DynamoDBDatastore, DynamoDBFactory
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.local.views import SQLiteViewStore
from adapters.observability.telemetry import (
    PROJECTION_LAG,
    MetricsSink,
)
from adapters.supervisor import PAUSES, Supervisor, WorkerStoppedError
from orders import OrderService
from orders.backoff import Backoff
from projections.ports import ViewStore
from projections.runtime import Runner
from projections.views import PROJECTIONS, projection_named

VIEWS_FILE_NAME = "views.sqlite3"
LAG_REPORT_SECONDS = 60.0
VIEWS_TABLE_VARIABLE = "ORDERS_VIEWS_TABLE"


def sqlite_view_store(data_dir: Path) -> SQLiteViewStore:
    """The local backend's view store, in ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return SQLiteViewStore(data_dir / VIEWS_FILE_NAME)


def dynamodb_view_store(service: OrderService, events_table: str) -> DynamoDBViewStore:
    """The view store of a service on DynamoDB: its own table, the service's client and
    metrics (two metrics attached to one client would each count every call)."""
    factory = service.factory
    if not isinstance(factory, DynamoDBFactory):
        msg = "the service does not run on the DynamoDB persistence module"
        raise TypeError(msg)
    table = os.environ.get(VIEWS_TABLE_VARIABLE) or f"{events_table}-views"
    datastore = factory.datastore
    store = DynamoDBViewStore(DynamoDBDatastore(datastore.client, table, metrics=datastore.metrics))
    if strtobool(os.environ.get(DynamoDBFactory.DYNAMODB_CREATE_TABLE, "no")):
        store.create_table_if_missing()
    return store


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
    """Gauge each projection's lag: notifications between its position and the log head."""
    for runner in workers:
        progress = runner.progress()
        lag = progress.head - progress.position
        metrics.gauge(PROJECTION_LAG, lag, Projection=runner.projection.name)


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
