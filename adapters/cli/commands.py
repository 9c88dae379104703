"""The order commands of ``orders``: place and drive orders, show them, audit them, list them.

Each command prints its data on stdout, as text or as JSON (``--output json``: stable field
names, see ``orders.audit``); user-supplied text is escaped (``adapters.cli.output.printable``).
A malformed value (an id, a line, a price, an amount, a time) is a usage error, exit 2, on
every command that takes it. Modules beyond typer are imported when a command runs.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

from adapters.cli.context import Runtime, backends, runtime_of
from adapters.cli.output import emit, key_values, note, printable, wants_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from orders import AuditEntry, Order, OrderLine, OrderService


def _settings(context: typer.Context) -> Runtime:
    return runtime_of(context)


def aware_time(value: str) -> datetime:
    """A time with its UTC offset (``2026-11-27T09:00:00+00:00`` or ``...Z``)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        msg = f"{value!r} is not an ISO 8601 time such as 2026-11-27T09:00:00+00:00"
        raise typer.BadParameter(msg, param_hint="--as-of") from None
    if parsed.utcoffset() is None:
        hint = parsed.isoformat() if "T" in value or " " in value else f"{value}T00:00:00"
        msg = f"{value!r} has no UTC offset; add one, as in {hint}+00:00"
        raise typer.BadParameter(msg, param_hint="--as-of")
    return parsed


def decimal_amount(value: str, *, name: str = "amount", option: str = "--amount") -> Decimal:
    """A decimal amount, as ``25.00``, checked by the domain's money rules (a usage error,
    naming ``option``, if it breaks one)."""
    from orders import OrderRuleError  # noqa: PLC0415
    from orders.values import money  # noqa: PLC0415

    try:
        return money(Decimal(value), name=name)
    except InvalidOperation:
        msg = f"{value!r} is not a decimal {name}, as 25.00"
        raise typer.BadParameter(msg, param_hint=option) from None
    except OrderRuleError as error:
        raise typer.BadParameter(f"{value!r}: {error}", param_hint=option) from None


def order_lines(values: list[str]) -> list[OrderLine]:
    """Each ``SKU:QUANTITY:UNIT_PRICE`` (as ``BOOK-001:2:12.50``) as an ``OrderLine``."""
    from orders import OrderLine, OrderRuleError  # noqa: PLC0415

    lines = []
    for value in values:
        sku, _, rest = value.partition(":")
        quantity, _, unit_price = rest.partition(":")
        price = decimal_amount(unit_price, name="unit_price", option="--line")
        try:
            lines.append(OrderLine(sku, int(quantity), price))
        except OrderRuleError as error:
            raise typer.BadParameter(f"{value!r}: {error}", param_hint="--line") from None
        except ValueError:
            msg = f"{value!r} is not SKU:QUANTITY:UNIT_PRICE, as BOOK-001:2:12.50"
            raise typer.BadParameter(msg, param_hint="--line") from None
    return lines


def order_document(order: Order) -> dict[str, Any]:
    """The order's state as JSON, with its version (``orders.audit.order_state``)."""
    from orders.audit import order_state  # noqa: PLC0415

    return {**order_state(order), "version": order.version}


def _value(value: Any) -> str:
    """A JSON-native value of an audit entry as one line of text, escaped."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return "[" + "; ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict) and {"sku", "quantity", "unit_price"} <= value.keys():
        return f"{value['quantity']} x {printable(value['sku'])} @ {value['unit_price']}"
    if isinstance(value, dict):
        return ", ".join(f"{key}={_value(item)}" for key, item in value.items())
    return printable(value)


def order_text(order: Order) -> str:
    """The order's state, one field per line, nothing cut."""
    document = order_document(order)
    rows: list[tuple[str, object]] = [
        (name, _value(document[name]))
        for name in ("order_id", "version", "customer_id", "status", "state")
    ]
    rows += [("line", _value(line)) for line in document["lines"]]
    rows += [("total", f"{document['total']} {document['currency']}")]
    rows += [
        (name, _value(document[name]))
        for name in ("payment_id", "cancellation_reason")
        if document[name] is not None
    ]
    return "\n".join(key_values(rows))


def history_text(order_id: UUID, entries: list[AuditEntry]) -> str:
    """One block per event: its version, type and time, then every payload field and every
    change, one per line, escaped and never cut (the terminal wraps what is wider)."""
    blocks = [f"history of order {order_id} ({len(entries)} events)"]
    for entry in entries:
        rows: list[tuple[str, object]] = [
            (name, _value(value)) for name, value in entry.payload.items()
        ]
        rows += [
            (f"changed {name}", f"{_value(change['before'])} -> {_value(change['after'])}")
            for name, change in entry.changes.items()
        ]
        head = f"version {entry.version}  {entry.type_name}  {entry.timestamp}"
        blocks.append("\n".join([head, *key_values(rows, indent="  ")]))
    return "\n\n".join(blocks)


OrderId = Annotated[UUID, typer.Argument(help="The order's id (a uuid)")]
CorrelationId = Annotated[
    str | None,
    typer.Option(help="Groups the work of one business transaction [default: a new uuid]"),
]
CausationId = Annotated[str | None, typer.Option(help="The message that caused this command")]
Lines = Annotated[
    list[str],
    typer.Option(
        "--line",
        metavar="SKU:QUANTITY:UNIT_PRICE",
        help="A line, as BOOK-001:2:12.50 (repeat for more lines)",
    ),
]


def show(
    context: typer.Context,
    order_id: OrderId,
    version: Annotated[
        int | None, typer.Option(min=1, help="State after this version (1: as placed)")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            metavar="TIME", help="State as of this time, with its offset (2026-11-27T09:00Z)"
        ),
    ] = None,
) -> None:
    """Show an order's state, now or as of a version or a time."""
    moment = None if as_of is None else aware_time(as_of)
    if version is not None and moment is not None:
        raise typer.BadParameter("give --version or --as-of, not both")
    service = _settings(context).existing_service(order_id)
    order = service.get_order(order_id, version=version, as_of=moment)
    if wants_json(context):
        emit(context, order_document(order))
    else:
        typer.echo(order_text(order))


def history(context: typer.Context, order_id: OrderId) -> None:
    """Every event of an order: who/why (correlation ids), its payload, what it changed.

    Text: one block per event, every field whole. ``--output json``: one document (the order id
    and its events); ``--output jsonl``: one event per line.
    """
    entries = _settings(context).existing_service(order_id).audit(order_id)
    if wants_json(context):
        documents = [entry.to_dict() for entry in entries]
        from adapters.cli.output import Format, output_format  # noqa: PLC0415

        if output_format(context) is Format.JSONL:
            emit(context, documents)
        else:
            emit(context, {"order_id": str(order_id), "events": documents})
        return
    typer.echo(history_text(order_id, entries))


def _print_version(context: typer.Context, order_id: UUID, version: int) -> None:
    if wants_json(context):
        emit(context, {"order_id": str(order_id), "version": version})
    else:
        typer.echo(f"order {order_id} version {version}")


def place(
    context: typer.Context,
    *,
    customer: Annotated[str, typer.Option(help="The customer's id")],
    line: Lines,
    currency: Annotated[str, typer.Option(help="ISO 4217 currency code")] = "EUR",
    order_id: Annotated[
        UUID | None,
        typer.Option(
            help="The new order's id, the idempotency key: placing the same order under it "
            "again records nothing [default: a new uuid]"
        ),
    ] = None,
    correlation_id: CorrelationId = None,
    causation_id: CausationId = None,
) -> None:
    """Place an order; prints its id and version."""
    from orders import Order, OrderRuleError  # noqa: PLC0415

    lines = order_lines(line)
    # Check every rule of placing in memory first: a refused order opens no store (and so
    # creates no file on a fresh local backend); what it refuses is a bad value, exit 2.
    try:
        Order.place(customer, lines, currency, order_id=order_id)
    except OrderRuleError as error:
        raise typer.BadParameter(str(error)) from None
    placed = (
        _settings(context)
        .service()
        .place_order(
            customer,
            lines,
            currency,
            order_id=order_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
    )
    _print_version(context, placed.order_id, placed.version)


def _drive(context: typer.Context, order_id: UUID, command: Callable[[OrderService], int]) -> None:
    """Run ``command`` on the service holding ``order_id``; print the order's version after it."""
    _print_version(context, order_id, command(_settings(context).existing_service(order_id)))


def change_lines(
    context: typer.Context,
    order_id: OrderId,
    *,
    line: Lines,
    correlation_id: CorrelationId = None,
    causation_id: CausationId = None,
) -> None:
    """Replace the lines of a pending order; prints its version."""
    lines = order_lines(line)
    trace = {"correlation_id": correlation_id, "causation_id": causation_id}
    _drive(context, order_id, lambda s: s.change_lines(order_id, lines, **trace))


def pay(
    context: typer.Context,
    order_id: OrderId,
    *,
    payment_id: Annotated[str, typer.Option(help="The payment's id (the same again: no-op)")],
    amount: Annotated[str, typer.Option(help="The amount paid: the order total, as 25.00")],
    correlation_id: CorrelationId = None,
    causation_id: CausationId = None,
) -> None:
    """Confirm the payment of an order; prints its version."""
    paid = decimal_amount(amount)
    trace = {"correlation_id": correlation_id, "causation_id": causation_id}
    _drive(context, order_id, lambda s: s.confirm_payment(order_id, payment_id, paid, **trace))


def ship(
    context: typer.Context,
    order_id: OrderId,
    correlation_id: CorrelationId = None,
    causation_id: CausationId = None,
) -> None:
    """Ship a paid order; prints its version."""
    trace = {"correlation_id": correlation_id, "causation_id": causation_id}
    _drive(context, order_id, lambda s: s.ship(order_id, **trace))


def complete(
    context: typer.Context,
    order_id: OrderId,
    correlation_id: CorrelationId = None,
    causation_id: CausationId = None,
) -> None:
    """Complete a shipped order; prints its version."""
    trace = {"correlation_id": correlation_id, "causation_id": causation_id}
    _drive(context, order_id, lambda s: s.complete(order_id, **trace))


def cancel(
    context: typer.Context,
    order_id: OrderId,
    reason: Annotated[str, typer.Option(help="Why the order is cancelled")],
    correlation_id: CorrelationId = None,
    causation_id: CausationId = None,
) -> None:
    """Cancel an order that has not shipped; prints its version."""
    trace = {"correlation_id": correlation_id, "causation_id": causation_id}
    _drive(context, order_id, lambda s: s.cancel(order_id, reason, **trace))


def list_(
    context: typer.Context,
    *,
    customer: Annotated[str, typer.Option(help="The customer whose orders to list")],
    status: Annotated[
        str | None, typer.Option(help="Only orders in this status (pending, processing, ...)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Orders per page")] = 20,
    after: Annotated[str | None, typer.Option(help="The page token a page printed")] = None,
) -> None:
    """A customer's orders from the read model (customer_orders), newest first, a page at a
    time; as current as the projections (``orders projections run``)."""
    from adapters.cli.projections import customer_page  # noqa: PLC0415
    from projections.views import OrderViews  # noqa: PLC0415

    views = OrderViews(backends(context, reading=True).store)
    found: list[dict[str, Any]] = []
    token = after
    while len(found) < limit:
        page = customer_page(views, customer, limit - len(found), token)
        found += [
            {
                "order_id": str(entry.order_id),
                "customer_id": customer,
                "status": entry.status,
                "total": str(entry.total),
                "currency": entry.currency,
                "version": entry.version,
                "placed_at": entry.placed_at,
                "changed_at": entry.changed_at,
            }
            for entry in page.orders
            if status is None or entry.status == status
        ]
        token = page.next
        if token is None:
            break
    if wants_json(context):
        emit(context, {"orders": found, "next": token})
        return
    for row in found:
        typer.echo(
            f"{row['order_id']}  {row['status']:<10}  {row['total']} {row['currency']}  "
            f"v{row['version']}  placed {row['placed_at']}"
        )
    if not found:
        note(f"no orders of {printable(customer)} in the read model (orders projections run)")
    if token:
        note(f"next page: --after {token}")


ORDER_COMMANDS = (place, change_lines, pay, ship, complete, cancel, show, history, list_)
"""Registered on the root app by ``adapters.cli.main`` (``list_`` as ``list``)."""
