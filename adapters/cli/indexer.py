"""``orders indexer ...``: run, watch and repair the indexed write mode's indexer.

Every command works on the DynamoDB backend's table (``--backend dynamodb --table ...``) and
the ``OrderService`` application's log; an operational error is one line on stderr and exit
status 1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from adapters.bootstrap.indexer import configured_indexer
from adapters.cli.context import runtime_of
from adapters.cli.errors import CommandError
from adapters.cli.output import emit, note, wants_json
from adapters.dynamodb.indexer import Indexer
from adapters.dynamodb.repair import RebuildProgress, rebuild, verify
from adapters.observability.telemetry import INDEXER_LAG, MetricsSink
from adapters.supervisor import PAUSES, Supervisor, stop_on_signals
from orders.backoff import Backoff

indexer_app = typer.Typer(
    no_args_is_help=True,
    help="The indexed write mode's indexer: builds the notification log from the table's stream.",
)


@indexer_app.callback()
def choose_namespace(
    context: typer.Context,
    namespace: Annotated[
        str | None,
        typer.Option(
            help="The application namespace to index (any eventsourcing application's "
            "'<name>_events') [default: $INDEXER_EVENTS_NAMESPACE or OrderService's]"
        ),
    ] = None,
) -> None:
    """The indexed write mode's indexer of one application's namespace."""
    if namespace is not None:
        runtime = runtime_of(context)
        runtime.settings = runtime.settings.model_copy(update={"events_namespace": namespace})


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
    idle = [0]

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
            idle[0] = 0
            on_write(indexed)
        else:  # idle: the pause doubles up to the indexer's idle_poll_max
            idle[0] += 1
            stop.wait(min(indexer.idle_poll_max, indexer.poll_interval * 2 ** min(idle[0], 10)))

    Supervisor("indexer", stop, metrics, backoff).run(step)


def _indexer(context: typer.Context, **options: float) -> Indexer:
    return configured_indexer(runtime_of(context).settings, **options)


@indexer_app.command()
def run(
    context: typer.Context,
    poll_interval: Annotated[
        float, typer.Option(min=0.01, help="Seconds between polls of an idle stream")
    ] = 0.2,
) -> None:
    """Follow the table's stream and index new events until SIGTERM or Ctrl-C; with metrics on
    (``ORDERS_METRICS``), report ``IndexerLag`` after every write."""
    metrics = runtime_of(context).metrics
    with stop_on_signals() as stopping:
        indexer = _indexer(context, poll_interval=poll_interval)
        indexer.load()
        note(f"indexer: following the stream from id {indexer.last_id}")
        last_report = time.monotonic()

        def progress(indexed: int) -> None:
            nonlocal last_report
            if indexer.newest_indexed_at is not None:
                lag = max(0.0, time.time() - indexer.newest_indexed_at)
                metrics.gauge(INDEXER_LAG, lag * 1000)
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                metrics.flush()
                note(f"indexer: {indexer.events_indexed} events indexed, last id {indexer.last_id}")

        follow(indexer, stopping, on_write=progress, metrics=metrics)
        note(
            f"indexer: stopped; {indexer.events_indexed} events indexed, last id {indexer.last_id}"
        )


@indexer_app.command()
def status(context: typer.Context) -> None:
    """Show how far the log is and how far behind the stream it is."""
    state = _indexer(context).status()
    written = (
        f"{time.time() - state.written_at:.1f} s ago" if state.written_at is not None else "never"
    )
    age = (
        f", the oldest written {state.oldest_pending_age:.0f} s ago"
        if state.oldest_pending_age is not None
        else ""
    )
    if wants_json(context):
        emit(
            context,
            {
                "last_id": state.last_id,
                "written_at": state.written_at,
                "pending_events": state.pending_events,
                "more_pending": state.more_pending,
                "oldest_pending_age": state.oldest_pending_age,
                "shards": len(state.checkpoint),
            },
        )
        return
    typer.echo(f"last id: {state.last_id} (last indexer write {written})")
    at_least = "at least " if state.more_pending else ""
    typer.echo(
        f"events in the stream not indexed yet: {at_least}{state.pending_events}{age}"
        " (one page per shard read)"
    )
    typer.echo(f"checkpoint: {len(state.checkpoint)} shard(s)")


@indexer_app.command("verify")
def verify_command(context: typer.Context) -> None:
    """Compare the log with the stream items; exit status 1 if they differ."""
    indexer = _indexer(context)
    report = verify(indexer.datastore, indexer.events_namespace)
    if report.stored_events == 0 and report.log_events == 0:
        msg = (
            f"namespace {indexer.events_namespace} holds no stream items and no log: "
            "nothing to verify (is --namespace right?)"
        )
        raise CommandError(msg)
    typer.echo(
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
            typer.echo(f"{label}: {len(found)}: {shown}")
    if not report.ok:
        raise typer.Exit(1)
    typer.echo("the log holds every stored event once, in order")


@indexer_app.command("rebuild")
def rebuild_command(context: typer.Context) -> None:
    """Index every stream item the log is missing (after an outage past the stream's 24 h);
    safe to rerun: it goes on from what is indexed."""

    def progress(state: RebuildProgress) -> None:
        if state.pages % 10 == 0:
            note(
                f"rebuild: {state.items_scanned} stream items scanned, "
                f"{state.events_appended} events appended"
            )

    indexer = _indexer(context)
    appended = rebuild(indexer, progress=progress)
    if wants_json(context):
        emit(context, {"appended": appended, "last_id": indexer.last_id})
    else:
        typer.echo(f"rebuild: {appended} events appended, last id {indexer.last_id}")
