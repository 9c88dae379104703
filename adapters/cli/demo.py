"""The end-to-end demo: places and advances a few hundred orders through ``OrderService``.

It drives the public Python API only, so it runs on whichever backend the service was built on.
It plays the payment service too: payments are ``PaymentSucceeded`` events handed, as JSON, to
the payment saga's record handler, the one an SQS consumer of payment events runs.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID, uuid4

import typer
from eventsourcing.utils import get_topic
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from adapters.bootstrap.consumers import local_dead_letters
from adapters.bootstrap.projections import runners
from adapters.cli.context import backends, runtime_of
from adapters.cli.output import console, emit, stderr_console, wants_json
from adapters.cli.projections import rebuild_document, report
from adapters.consumers.dispatcher import PAYMENT_DETAIL_TYPES, Dispatcher
from adapters.consumers.saga import PaymentSaga
from orders import OrderError, OrderLine, OrderPlaced, OrderService, OrderStatus
from projections.ports import ViewStore
from projections.rebuild import Rebuild
from projections.views import PROJECTIONS, OrderViews
from schemas import to_json
from schemas.payments import payment_succeeded

CATALOGUE: dict[str, Decimal] = {
    "BOOK-001": Decimal("12.50"),
    "MUG-002": Decimal("8.99"),
    "TEE-003": Decimal("19.00"),
    "CAP-004": Decimal("14.25"),
    "PEN-005": Decimal("1.75"),
}


@dataclass
class DemoSummary:
    """What one demo run did, for the CLI to print."""

    placed: list[UUID] = field(default_factory=list)
    commands: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejection_examples: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def random_lines(rng: random.Random) -> list[OrderLine]:
    """One to four distinct catalogue lines with small quantities."""
    skus = rng.sample(sorted(CATALOGUE), rng.randint(1, 4))
    return [
        OrderLine(sku=sku, quantity=rng.randint(1, 3), unit_price=CATALOGUE[sku]) for sku in skus
    ]


def order_journeys(
    service: OrderService,
    order_id: UUID,
    journey: str,
    rng: random.Random,
    payments: Callable[[str], None],
) -> Iterator[Callable[[], object]]:
    """The commands one order goes through, most of them valid, some deliberately not.

    Every command of one order's journey shares the correlation id ``journey``; the causation id
    names the system that sent the command, which is what an audit asks for. Payments are
    events of the payment service handed to ``payments`` (the payment saga's record handler),
    which confirms them on the order with the payment event's id as causation id.
    """

    def by(sender: str) -> dict[str, str]:
        return {"correlation_id": journey, "causation_id": sender}

    roll = rng.random()
    if roll < 0.10:
        yield lambda: service.change_lines(order_id, random_lines(rng), **by("web-shop"))
    if roll < 0.20:
        yield lambda: service.cancel(
            order_id, reason="customer changed their mind", **by("web-shop")
        )
        return
    if roll < 0.25:
        return  # stays pending
    total = service.get_order(order_id).total
    payment = f"pay-{order_id.hex[:12]}"
    if roll < 0.30:  # a wrong amount is refused; nothing is recorded
        underpaid = to_json(
            payment_succeeded(order_id, payment, total / 2, "EUR", correlation_id=journey)
        )
        yield lambda: payments(underpaid)
    paid = to_json(payment_succeeded(order_id, payment, total, "EUR", correlation_id=journey))
    yield lambda: payments(paid)
    if roll < 0.35:  # the payment event is delivered twice: no new event
        yield lambda: payments(paid)
    yield lambda: service.ship(order_id, **by("warehouse"))
    if roll < 0.45:
        return  # still on its way
    if roll < 0.50:  # too late to change the lines of a shipped order
        yield lambda: service.change_lines(order_id, random_lines(rng), **by("web-shop"))
    yield lambda: service.complete(order_id, **by("carrier"))


def run_demo(
    service: OrderService,
    order_count: int,
    seed: int,
    on_order_done: Callable[[], None] = lambda: None,
) -> DemoSummary:
    """Place ``order_count`` orders and walk each through a journey; refusals are counted."""
    rng = random.Random(seed)
    summary = DemoSummary()
    payments = Dispatcher([(PAYMENT_DETAIL_TYPES, PaymentSaga(service))])
    started = time.perf_counter()
    run = uuid4().hex[:8]
    for number in range(order_count):
        journey = f"demo-{run}-journey-{number}"
        # The id is chosen before sending: sent again after a timeout, it places no second order.
        placed = service.place_order(
            customer_id=f"customer-{rng.randint(1, order_count // 3 + 1)}",
            lines=random_lines(rng),
            currency="EUR",
            order_id=uuid4(),
            correlation_id=journey,
            causation_id="web-shop",
        )
        summary.placed.append(placed.order_id)
        summary.commands += 1
        for command in order_journeys(service, placed.order_id, journey, rng, payments):
            summary.commands += 1
            try:
                command()
            except OrderError as error:
                reason = getattr(error, "rule", type(error).__name__)
                summary.rejected[reason] += 1
                summary.rejection_examples.setdefault(reason, str(error))
        on_order_done()
    summary.seconds = time.perf_counter() - started
    return summary


def stored_order_ids(service: OrderService) -> list[UUID]:
    """Every order the store holds (every run's), from the log's ``OrderPlaced`` notifications."""
    topic = get_topic(OrderPlaced)
    found: list[UUID] = []
    position = 0
    while page := service.recorder.select_notifications(
        position + 1, 1000, topics=[topic], inclusive_of_start=True
    ):
        found += [UUID(str(notification.originator_id)) for notification in page]
        position = page[-1].id
    return found


def demo_views(
    service: OrderService, store: ViewStore, statuses: Mapping[UUID, str], out: Console
) -> list[dict[str, Any]]:
    """The demo's read side: bring the views up to date in-process, show them beside the
    aggregates on ``out``; the rows shown. ``statuses`` is every stored order's status (every
    run's, as the view counts them)."""
    for worker in runners(service, store):
        worker.catch_up()
    generation, rows = OrderViews(store).totals()
    table = Table(title=f"orders_by_status view (generation {generation}) beside the aggregates")
    for column in ("status", "orders (view)", "orders (aggregates)", "total (view)"):
        table.add_column(column, justify="left" if column == "status" else "right", overflow="fold")
    shown = []
    for row in rows:
        counted = sum(1 for status in statuses.values() if status == row.status)
        table.add_row(row.status, str(row.orders), str(counted), f"{row.total} {row.currency}")
        shown.append(
            {
                "status": row.status,
                "currency": row.currency,
                "orders_in_view": row.orders,
                "orders_in_aggregates": counted,
                "total_in_view": str(row.total),
            }
        )
    out.print(table)
    return shown


def demo_rebuild(service: OrderService, store: ViewStore, *, as_json: bool) -> dict[str, Any]:
    """The demo's last step: rebuild a view from the log and verify it equals the live one;
    printed as text unless ``as_json``, returned as JSON."""
    projection = PROJECTIONS["orders_by_status"]
    decode = service.mapper.to_domain_event
    result = Rebuild(projection, store, service.recorder, decode, grace_seconds=0).run(verify=True)
    if not as_json:
        report(result)
    return rebuild_document(result)


demo_app = typer.Typer()


@demo_app.command()
def demo(
    context: typer.Context,
    order_count: Annotated[
        int, typer.Option("--orders", min=1, help="How many orders to place")
    ] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the random journeys")] = 7,
) -> None:
    """Place and advance a few hundred orders, audit one, show the views and the downstream
    views, and end by rebuilding a view and verifying it equals the live one."""
    from adapters.cli.commands import history_text, order_text  # noqa: PLC0415
    from adapters.cli.downstream import demo_downstream  # noqa: PLC0415
    from adapters.dynamodb.indexer import indexing  # noqa: PLC0415

    service, views = (chosen := backends(context)).service, chosen.store
    with (
        Progress(console=stderr_console(), transient=True) as progress,
        indexing(service.factory),
    ):
        task = progress.add_task("placing and advancing orders", total=order_count)
        summary = run_demo(service, order_count, seed, lambda: progress.advance(task))

    # Every stored order, as the views count them: a second run shows both runs on both sides.
    statuses = {
        order_id: service.get_order(order_id).status for order_id in stored_order_ids(service)
    }
    figures = {
        "orders_placed": len(summary.placed),
        "orders_stored": len(statuses),
        "commands_sent": summary.commands,
        "commands_refused": sum(summary.rejected.values()),
        "events_in_the_notification_log": service.recorder.max_notification_id() or 0,
        "commands_per_second": round(summary.commands / summary.seconds),
    }
    for status in OrderStatus:  # Of every stored order, as the views count them.
        figures[f"orders_{status}"] = sum(1 for s in statuses.values() if s == status)
    as_json = wants_json(context)
    # In JSON mode the tables go to stderr and stdout holds one document.
    out = stderr_console() if as_json else console()
    table = Table(title="demo summary")
    table.add_column("figure", overflow="fold")
    table.add_column("value", justify="right", overflow="fold")
    for figure, value in figures.items():
        table.add_row(figure.replace("_", " "), f"{value:,}")
    out.print(table)
    for rule, message in sorted(summary.rejection_examples.items()):
        out.print(f"refused ({summary.rejected[rule]}x): {message}", markup=False)

    audited = max(summary.placed, key=lambda order_id: service.get_order(order_id).version)
    out.print(history_text(audited, service.audit(audited)), markup=False)
    out.print(f"\nstate at version 1\n{order_text(service.get_order(audited, version=1))}")
    out.print(f"\nstate now\n{order_text(service.get_order(audited))}\n", markup=False)
    shown = demo_views(service, views, statuses, out)
    dead_letters = local_dead_letters(runtime_of(context).settings)
    relayed = demo_downstream(
        service, views, dead_letters, service.get_order(audited).customer_id, out
    )
    rebuilt = demo_rebuild(service, views, as_json=as_json)
    if as_json:
        document = {
            "figures": figures,
            "refused": dict(summary.rejected),
            "audited_order_id": str(audited),
            "orders_by_status": shown,
            "downstream": relayed,
            "rebuild": rebuilt,
        }
        emit(context, document)
