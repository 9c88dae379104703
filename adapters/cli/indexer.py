"""``orders indexer ...``: run, watch and repair the indexed write mode's indexer.

Every command works on the DynamoDB backend's table (``--backend dynamodb --table ...``) and
the ``OrderService`` application's log; an operational error is one line on stderr and exit
status 1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from eventsourcing.persistence import PersistenceError
from rich.console import Console

from adapters.dynamodb import DynamoDBFactory
from adapters.dynamodb.indexer import Indexer, indexer_of, rebuild, verify
from adapters.observability.telemetry import INDEXER_LAG, MetricsSink
from adapters.supervisor import PAUSES, Supervisor, WorkerStoppedError, stop_on_signals
from orders.backoff import Backoff

indexer_app = typer.Typer(
    no_args_is_help=True,
    help="The indexed write mode's indexer: builds the notification log from the table's stream.",
)
console = Console()
errors = Console(stderr=True)


@contextmanager
def _operational_errors() -> Iterator[None]:
    """Operational errors as one line on stderr and exit status 1."""
    try:
        yield
    except (PersistenceError, OSError, ValueError, TimeoutError, WorkerStoppedError) as error:
        errors.print(f"indexer: {error}", markup=False, highlight=False)
        raise typer.Exit(1) from None


def follow(
    indexer: Indexer,
    stop: threading.Event,
    *,
    on_write: Callable[[int], None] = lambda _: None,
    metrics: MetricsSink | None = None,
    backoff: Backoff = PAUSES,
) -> None:
    """Follow the stream through the indexer's step API (``load``, ``poll_once``) under the
    :class:`~adapters.supervisor.Supervisor`: after a transient error the indexer reloads its
    checkpoint and goes on; a permanent one raises
    :class:`~adapters.supervisor.WorkerStoppedError`."""
    reload = [False]  # the caller has loaded the indexer

    def step() -> None:
        if reload[0]:
            indexer.load()
            reload[0] = False
        try:
            indexed = indexer.poll_once()
        except Exception:
            reload[0] = True  # retry from the checkpoint, as the indexer's own loop does
            raise
        if indexed:
            on_write(indexed)
        else:
            stop.wait(indexer.poll_interval)

    Supervisor("indexer", stop, metrics, backoff).run(step)


def _indexer(context: typer.Context, **options: float) -> Indexer:
    from adapters.cli.main import Backend, settings_of  # noqa: PLC0415 - adapters.cli.main imports this module.

    settings = settings_of(context)
    if settings.backend is not Backend.DYNAMODB:
        msg = "the indexer works on the DynamoDB backend: use --backend dynamodb"
        raise ValueError(msg)
    factory = settings.service().factory
    assert isinstance(factory, DynamoDBFactory)
    return indexer_of(factory, **options)


@indexer_app.command()
def run(
    context: typer.Context,
    poll_interval: Annotated[
        float, typer.Option(min=0.01, help="Seconds between polls of an idle stream")
    ] = 0.2,
) -> None:
    """Follow the table's stream and index new events until SIGTERM or Ctrl-C; with metrics on
    (``ORDERS_METRICS``), report ``IndexerLag`` after every write."""
    from adapters.cli.main import settings_of  # noqa: PLC0415 - adapters.cli.main imports this module.

    metrics = settings_of(context).metrics
    with stop_on_signals() as stopping, _operational_errors():
        indexer = _indexer(context, poll_interval=poll_interval)
        indexer.load()
        console.print(f"indexer: following the stream from id {indexer.last_id}")
        last_report = time.monotonic()

        def progress(indexed: int) -> None:
            nonlocal last_report
            if indexer.newest_indexed_at is not None:
                lag = max(0.0, time.time() - indexer.newest_indexed_at)
                metrics.gauge(INDEXER_LAG, lag * 1000)
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                metrics.flush()
                console.print(
                    f"indexer: {indexer.events_indexed} events indexed, last id {indexer.last_id}"
                )

        follow(indexer, stopping, on_write=progress, metrics=metrics)
        console.print(
            f"indexer: stopped; {indexer.events_indexed} events indexed, last id {indexer.last_id}"
        )


@indexer_app.command()
def status(context: typer.Context) -> None:
    """Show how far the log is and how far behind the stream it is."""
    with _operational_errors():
        state = _indexer(context).status()
    written = (
        f"{time.time() - state.written_at:.1f} s ago" if state.written_at is not None else "never"
    )
    age = (
        f", the oldest written {state.oldest_pending_age:.0f} s ago"
        if state.oldest_pending_age is not None
        else ""
    )
    console.print(f"last id: {state.last_id} (last indexer write {written})")
    console.print(f"events in the stream not indexed yet: {state.pending_events}{age}")
    console.print(f"checkpoint: {len(state.checkpoint)} shard(s)")


@indexer_app.command("verify")
def verify_command(context: typer.Context) -> None:
    """Compare the log with the stream items; exit status 1 if they differ."""
    with _operational_errors():
        indexer = _indexer(context)
        report = verify(indexer.datastore, indexer.events_namespace)
    console.print(
        f"log: {report.log_events} events, last id {report.last_id}; "
        f"stream items: {report.stored_events} events"
    )
    problems: dict[str, list[Any]] = {
        "ids missing (gaps) at": report.gaps,
        "events logged twice": report.duplicates,
        "events logged out of version order": report.out_of_order,
        "logged events not in the streams": report.not_stored,
        "logged events differing from the stored ones": report.differing,
        "stored events not in the log (run `orders indexer rebuild`)": report.not_indexed,
    }
    for label, found in problems.items():
        if found:
            shown = ", ".join(map(str, found[:5])) + (" ..." if len(found) > 5 else "")
            console.print(f"{label}: {len(found)}: {shown}", markup=False)
    if not report.ok:
        raise typer.Exit(1)
    console.print("the log holds every stored event once, in order")


@indexer_app.command("rebuild")
def rebuild_command(context: typer.Context) -> None:
    """Index every stream item the log is missing (after an outage past the stream's 24 h)."""
    with _operational_errors():
        indexer = _indexer(context)
        appended = rebuild(indexer)
    console.print(f"rebuild: {appended} events appended, last id {indexer.last_id}")
