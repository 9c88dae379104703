"""``orders projections ...``: run, inspect, rebuild and query the read models."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import typer
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
from adapters.cli.context import backends, runtime_of
from adapters.cli.errors import CommandError, VerifyMismatchError
from adapters.cli.output import (
    console,
    emit,
    emit_json,
    key_values,
    note,
    plain,
    printable,
    row_document,
    stderr_console,
    wants_json,
)
from adapters.supervisor import stop_on_signals
from orders import OrderEvent
from projections.generations import live_generation, next_pointer, view_name
from projections.rebuild import Rebuild, RebuildResult, reproject_order
from projections.rows import Projection
from projections.views import PROJECTIONS, CustomerOrdersPage, OrderViews, projection_named

projections_app = typer.Typer(no_args_is_help=True, help="Read models: run, status, rebuild, query")


def _projection(name: str) -> Projection:
    try:
        return projection_named(name)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="NAME") from None


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
    for name in names or ():
        _projection(name)
    chosen = backends(context)
    workers = runners(
        chosen.service, chosen.store, names or (), batch_size=batch_size, max_rate=max_rate
    )
    with stop_on_signals() as stop:
        if once:
            for worker in workers:
                worker.catch_up(stop=stop)
        else:
            note(f"following the log for {', '.join(w.projection.name for w in workers)}")
            run_worker(workers, stop, poll_interval, metrics=runtime_of(context).metrics)
    if wants_json(context):
        emit(context, {"processed": {w.projection.name: w.applied for w in workers}})
        return
    for worker in workers:
        typer.echo(f"{worker.projection.name}: {worker.applied} notifications processed")


@projections_app.command()
def status(context: typer.Context) -> None:
    """Each projection's live generation, position, lag behind the log head, and rebuild."""
    chosen = backends(context, reading=True)
    head = chosen.service.recorder.max_notification_id() or 0
    documents = []
    table = Table(title=f"projections (log head: notification {head})")
    for column in ("projection", "generation", "position", "lag", "rebuild"):
        table.add_column(
            column, justify="left" if column == "projection" else "right", overflow="fold"
        )
    for name in PROJECTIONS:
        generation = live_generation(chosen.store, name)
        position = chosen.store.position(view_name(name, generation)) or 0
        planned = chosen.store.position(next_pointer(name)) or generation
        rebuild = "-"
        if planned > generation:
            built = chosen.store.position(view_name(name, planned)) or 0
            rebuild = f"generation {planned} at {built}"
        documents.append(
            {
                "projection": name,
                "generation": generation,
                "position": position,
                "lag": head - position,
                "rebuild": None if rebuild == "-" else {"generation": planned, "at": built},
            }
        )
        table.add_row(name, str(generation), str(position), str(head - position), rebuild)
    if wants_json(context):
        emit(context, {"log_head": head, "projections": documents})
    else:
        console().print(table)


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
    projection = _projection(name)
    chosen = backends(context)
    if order is not None:
        events = [e for e in chosen.service.events.get(order) if isinstance(e, OrderEvent)]
        if not events:
            raise CommandError(f"no order {order}")
        changed = reproject_order(projection, chosen.store, events, order)
        if wants_json(context):
            emit(context, {"projection": name, "order_id": str(order), "rows_written": changed})
        else:
            typer.echo(f"{name}: order {order} re-projected ({changed} rows written)")
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
            console=stderr_console(),
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
    report(result, as_json=wants_json(context))
    if result.notes:
        raise typer.Exit(130)
    if result.differences:
        switched = "readers switched anyway" if result.switched else "readers not switched"
        msg = f"verify: {len(result.differences)} rows of {name} differ ({switched})"
        raise VerifyMismatchError(msg)


def report(result: RebuildResult, *, as_json: bool = False) -> None:
    """Print what a rebuild did (as one JSON document if ``as_json``): the verification
    first, then the switch (or why not)."""
    if as_json:
        emit_json(rebuild_document(result))
        return
    for line in result.notes:
        note(f"{result.projection}: {line}")
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
        typer.echo(
            f"{built}; readers NOT switched: they stay on generation {result.old_generation}, "
            "which differs from the rebuilt one (run again with --switch-anyway to switch)"
        )
        return
    typer.echo(
        f"{built}, readers switched from generation {result.old_generation}, "
        f"{result.dropped_rows:,} rows of the old generation dropped "
        f"({result.seconds:,.1f} s in all)"
    )


def report_differences(result: RebuildResult) -> None:
    """The verification: equal, or a table of every differing field of the first 50 rows."""
    differences = result.differences or []
    live, rebuilt = result.positions
    if not differences:
        typer.echo(
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
                *(Text(printable(cell)) for cell in (difference.partition, difference.key, field)),
                Text(printable(live_value)),
                Text(printable(rebuilt_value)),
            )
    console().print(table)


def rebuild_document(result: RebuildResult) -> dict[str, Any]:
    """What a rebuild did, as JSON."""
    return {
        "projection": result.projection,
        "old_generation": result.old_generation,
        "new_generation": result.new_generation,
        "resumed_from": result.resumed_from,
        "replayed": result.replayed,
        "seconds": result.seconds,
        "dropped_rows": result.dropped_rows,
        "switched": result.switched,
        "notes": result.notes,
        "positions": {"live": result.positions[0], "rebuilt": result.positions[1]},
        "differences": None
        if result.differences is None
        else [
            {
                "partition": d.partition,
                "key": d.key,
                "live": row_document(d.live),
                "rebuilt": row_document(d.rebuilt),
            }
            for d in result.differences
        ],
    }


def customer_page(
    views: OrderViews, customer_id: str, limit: int, after: str | None
) -> CustomerOrdersPage:
    """A page of the customer_orders view; a malformed ``--after`` token is a usage error."""
    try:
        return views.customer_orders(customer_id, limit, after)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--after") from None


def _lines_text(value: list[dict[str, Any]]) -> str:
    return ", ".join(f"{x['quantity']} x {printable(x['sku'])} @ {x['unit_price']}" for x in value)


@projections_app.command("order")
def order_command(context: typer.Context, order_id: UUID) -> None:
    """The order summary view of one order."""
    summary = OrderViews(backends(context, reading=True, order_id=order_id).store).order(order_id)
    if summary is None:
        raise CommandError(f"the order summary view has no order {order_id}")
    if wants_json(context):
        emit(context, plain(summary))
        return
    rows = [
        (field, _lines_text(value) if field == "lines" else printable(value))
        for field, value in summary.items()
    ]
    typer.echo(f"order summary {order_id}")
    typer.echo("\n".join(key_values(rows, indent="  ")))


@projections_app.command()
def totals(context: typer.Context) -> None:
    """Orders and their totals per status and currency."""
    generation, rows = OrderViews(backends(context, reading=True).store).totals()
    if wants_json(context):
        documents = [
            {"status": r.status, "currency": r.currency, "orders": r.orders, "total": str(r.total)}
            for r in rows
        ]
        emit(context, {"generation": generation, "totals": documents})
        return
    table = Table(title=f"orders by status (generation {generation})")
    for column in ("status", "currency", "orders", "total"):
        table.add_column(
            column, justify="left" if column in ("status", "currency") else "right", overflow="fold"
        )
    for row in rows:
        table.add_row(row.status, row.currency, str(row.orders), str(row.total))
    console().print(table)


@projections_app.command()
def customer(
    context: typer.Context,
    customer_id: str,
    limit: Annotated[int, typer.Option(min=1, help="Orders per page")] = 20,
    after: Annotated[str | None, typer.Option(help="The page token a page printed")] = None,
) -> None:
    """A customer's orders, newest first, a page at a time."""
    views = OrderViews(backends(context, reading=True).store)
    page = customer_page(views, customer_id, limit, after)
    if wants_json(context):
        orders = [
            {
                "order_id": str(e.order_id),
                "placed_at": e.placed_at,
                "changed_at": e.changed_at,
                "status": e.status,
                "total": str(e.total),
                "currency": e.currency,
                "version": e.version,
            }
            for e in page.orders
        ]
        emit(context, {"customer_id": customer_id, "orders": orders, "next": page.next})
        return
    table = Table(title=Text(f"orders of {printable(customer_id)}"))
    for column in ("order", "placed at", "status", "total", "version"):
        table.add_column(column, overflow="fold")
    for entry in page.orders:
        table.add_row(
            str(entry.order_id),
            entry.placed_at,
            entry.status,
            f"{entry.total} {entry.currency}",
            str(entry.version),
        )
    console().print(table)
    if page.next:
        note(f"next page: --after {page.next}")
