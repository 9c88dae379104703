"""``orders projections ...``: run, inspect, rebuild and query the read models."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import Annotated
from uuid import UUID

import typer
from eventsourcing.persistence import PersistenceError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from adapters.bootstrap.projections import run_worker, runners
from adapters.cli.context import backends, runtime_of, stop_on_signals
from orders import OrderError, OrderEvent, OrderService
from projections.generations import NotCaughtUpError, live_generation, next_pointer, view_name
from projections.ports import ViewStore, ViewStoreError
from projections.rebuild import Rebuild, RebuildResult, reproject_order
from projections.runtime import RunnerStoppedError
from projections.views import PROJECTIONS, OrderViews, projection_named

projections_app = typer.Typer(no_args_is_help=True, help="Read models: run, status, rebuild, query")
console = Console(width=None if sys.stdout.isatty() else 160)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as one line on stderr; the exit (status 1) to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(1)


@contextlib.contextmanager
def operational_errors() -> Iterator[None]:
    """An operational error becomes one line on stderr and exit status 1."""
    try:
        yield
    except (
        ViewStoreError,
        NotCaughtUpError,
        RunnerStoppedError,
        PersistenceError,
        OrderError,
        ValueError,
        OSError,
    ) as error:
        raise fail(str(error)) from None


Names = Annotated[
    list[str] | None,
    typer.Argument(help=f"Projections (default: all of {', '.join(PROJECTIONS)})"),
]


@projections_app.command()
def run(
    context: typer.Context,
    names: Names = None,
    *,
    batch_size: Annotated[int, typer.Option(min=1, help="Notifications read per batch")] = 500,
    poll_interval: Annotated[float, typer.Option(help="Seconds between reads when idle")] = 0.2,
    max_rate: Annotated[
        float | None, typer.Option(min=1, help="Most events per second [default: no bound]")
    ] = None,
    once: Annotated[bool, typer.Option(help="Process what is new, then exit")] = False,
) -> None:
    """Follow the log and keep the views up to date, until SIGTERM or Ctrl-C."""
    with operational_errors():
        chosen = backends(context)
        workers = runners(
            chosen.service, chosen.store, names or (), batch_size=batch_size, max_rate=max_rate
        )
        with stop_on_signals() as stop:
            if once:
                for worker in workers:
                    worker.catch_up(stop=stop)
            else:
                console.print(
                    f"following the log for {', '.join(w.projection.name for w in workers)}"
                )
                run_worker(workers, stop, poll_interval, metrics=runtime_of(context).metrics)
        for worker in workers:
            console.print(f"{worker.projection.name}: {worker.applied} notifications processed")


@projections_app.command()
def status(context: typer.Context) -> None:
    """Each projection's live generation, position, lag behind the log head, and rebuild."""
    with operational_errors():
        chosen = backends(context)
        head = chosen.service.recorder.max_notification_id() or 0
        table = Table(title=f"projections (log head: notification {head})")
        for column in ("projection", "generation", "position", "lag", "rebuild"):
            table.add_column(column, justify="left" if column == "projection" else "right")
        for name in PROJECTIONS:
            generation = live_generation(chosen.store, name)
            position = chosen.store.position(view_name(name, generation)) or 0
            planned = chosen.store.position(next_pointer(name)) or generation
            rebuild = "-"
            if planned > generation:
                built = chosen.store.position(view_name(name, planned)) or 0
                rebuild = f"generation {planned} at {built}"
            table.add_row(name, str(generation), str(position), str(head - position), rebuild)
        console.print(table)


class RateColumn(ProgressColumn):
    """Events per second of a task."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} events/s")


@projections_app.command()
def rebuild(
    context: typer.Context,
    name: Annotated[str, typer.Argument(help=f"One of {', '.join(PROJECTIONS)}")],
    *,
    verify: Annotated[
        bool,
        typer.Option(
            help="Compare the rebuilt view with the live one before switching; on a "
            "difference, print it, do not switch, and exit 3"
        ),
    ] = False,
    switch_anyway: Annotated[
        bool, typer.Option(help="With --verify: switch readers even if the views differ")
    ] = False,
    max_rate: Annotated[
        float | None, typer.Option(min=1, help="Most events per second [default: no bound]")
    ] = None,
    order: Annotated[
        UUID | None, typer.Option(help="Only re-project this order's rows from its stream")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Notifications read per batch")] = 5000,
    grace: Annotated[
        float, typer.Option(min=0, help="Seconds the old generation serves after the switch")
    ] = 2.0,
) -> None:
    """Rebuild a view from the log into a new generation, then switch readers to it.

    Resumes an interrupted (or unswitched) rebuild where it stopped. SIGTERM or Ctrl-C stops it
    cleanly. Exit status 3: --verify found differences.
    """
    with operational_errors():
        projection = projection_named(name)
        chosen = backends(context)
        if order is not None:
            events = [e for e in chosen.service.events.get(order) if isinstance(e, OrderEvent)]
            if not events:
                raise fail(f"no order {order}")
            changed = reproject_order(projection, chosen.store, events, order)
            console.print(f"{name}: order {order} re-projected ({changed} rows written)")
            return
        with (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                RateColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
            ) as progress,
            stop_on_signals() as stop,
        ):
            task = progress.add_task(f"rebuilding {name}", total=None)

            def started(position: int, head: int) -> None:
                progress.update(task, total=max(head - position, 1), completed=0)
                if position:
                    progress.console.print(f"resuming from notification {position}")

            job = Rebuild(
                projection,
                chosen.store,
                chosen.service.recorder,
                chosen.service.mapper.to_domain_event,
                batch_size=batch_size,
                max_rate=max_rate,
                grace_seconds=grace,
                on_start=started,
                on_progress=lambda count: progress.advance(task, count),
            )
            result = job.run(verify=verify, switch_anyway=switch_anyway, stop=stop)
        report(result)
        if result.notes:
            raise typer.Exit(130)
        if result.differences:
            raise typer.Exit(VERIFY_MISMATCH)


VERIFY_MISMATCH = 3
"""The exit status of a ``--verify`` that found the rebuilt view differing from the live one."""


def report(result: RebuildResult) -> None:
    """Print what a rebuild did: the verification first, then the switch (or why not)."""
    for note in result.notes:
        console.print(f"{result.projection}: {note}")
    if result.notes:
        return
    rate = result.replayed / result.replay_seconds if result.replay_seconds else 0
    built = (
        f"{result.projection}: generation {result.new_generation} built from "
        f"{'the start' if not result.resumed_from else f'notification {result.resumed_from}'}"
        f" ({result.replayed:,} notifications, {rate:,.0f}/s)"
    )
    if result.differences is not None:
        report_differences(result)
    if not result.switched:
        console.print(
            f"{built}; readers NOT switched: they stay on generation {result.old_generation}, "
            "which differs from the rebuilt one (run again with --switch-anyway to switch)"
        )
        return
    console.print(
        f"{built}, readers switched from generation {result.old_generation}, "
        f"{result.dropped_rows:,} rows of the old generation dropped "
        f"({result.seconds:,.1f} s in all)"
    )


def report_differences(result: RebuildResult) -> None:
    """The verification: equal, or a table of every differing field of the first 50 rows."""
    differences = result.differences or []
    live, rebuilt = result.positions
    if not differences:
        console.print(
            f"verify: the rebuilt view equals the live one (both at notification {rebuilt})"
            if live == rebuilt
            else f"verify: equal, the live view at {live}, the rebuilt at {rebuilt}"
        )
        return
    table = Table(
        title=f"verify: {len(differences)} rows differ (live at {live}, rebuilt at {rebuilt})"
    )
    for column in ("partition", "key", "field", "live", "rebuilt"):
        table.add_column(column, overflow="fold")
    for difference in differences[:50]:
        for field, live_value, rebuilt_value in difference.fields():
            table.add_row(
                *(Text(cell) for cell in (difference.partition, difference.key, field)),
                Text(live_value),
                Text(rebuilt_value),
            )
    console.print(table)


@projections_app.command("order")
def order_command(context: typer.Context, order_id: UUID) -> None:
    """The order summary view of one order."""
    with operational_errors():
        summary = OrderViews(backends(context).store).order(order_id)
        if summary is None:
            raise fail(f"the order summary view has no order {order_id}")
        table = Table(title=f"order summary {order_id}", show_header=False)
        for field, value in summary.items():
            shown = (
                ", ".join(f"{x['quantity']} x {x['sku']} @ {x['unit_price']}" for x in value)
                if field == "lines"
                else str(value)
            )
            table.add_row(field, shown)
        console.print(table)


@projections_app.command()
def totals(context: typer.Context) -> None:
    """Orders and their totals per status and currency."""
    with operational_errors():
        generation, rows = OrderViews(backends(context).store).totals()
        table = Table(title=f"orders by status (generation {generation})")
        for column in ("status", "currency", "orders", "total"):
            table.add_column(
                column, justify="left" if column in ("status", "currency") else "right"
            )
        for row in rows:
            table.add_row(row.status, row.currency, str(row.orders), str(row.total))
        console.print(table)


@projections_app.command()
def customer(
    context: typer.Context,
    customer_id: str,
    limit: Annotated[int, typer.Option(min=1, help="Orders per page")] = 20,
    after: Annotated[str | None, typer.Option(help="The page token a page printed")] = None,
) -> None:
    """A customer's orders, newest first, a page at a time."""
    with operational_errors():
        page = OrderViews(backends(context).store).customer_orders(customer_id, limit, after)
        table = Table(title=f"orders of {customer_id}")
        for column in ("order", "placed at", "status", "total", "version"):
            table.add_column(column)
        for entry in page.orders:
            table.add_row(
                str(entry.order_id),
                entry.placed_at,
                entry.status,
                f"{entry.total} {entry.currency}",
                str(entry.version),
            )
        console.print(table)
        if page.next:
            console.print(f"next page: --after {page.next}")


def demo_views(service: OrderService, store: ViewStore, statuses: Mapping[UUID, str]) -> None:
    """The demo's read side: bring the views up to date in-process, show them beside the
    aggregates."""
    for worker in runners(service, store):
        worker.catch_up()
    generation, rows = OrderViews(store).totals()
    table = Table(title=f"orders_by_status view (generation {generation}) beside the aggregates")
    for column in ("status", "orders (view)", "orders (aggregates)", "total (view)"):
        table.add_column(column, justify="left" if column == "status" else "right")
    for row in rows:
        counted = sum(1 for status in statuses.values() if status == row.status)
        table.add_row(row.status, str(row.orders), str(counted), f"{row.total} {row.currency}")
    console.print(table)


def demo_rebuild(service: OrderService, store: ViewStore) -> None:
    """The demo's last step: rebuild a view from the log and verify it equals the live one."""
    projection = PROJECTIONS["orders_by_status"]
    decode = service.mapper.to_domain_event
    result = Rebuild(projection, store, service.recorder, decode, grace_seconds=0).run(verify=True)
    report(result)
