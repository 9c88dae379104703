"""The public contract: checked-in JSON Schema files, the envelope mapping, and refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import ValidationError

from orders import ORDER_EVENT_TYPES, OrderEvent, OrderService
from schemas import ENVELOPE, event_id, to_envelope
from schemas.generate import SCHEMA_DIR, rendered_schemas
from tests.unit.builders import CANCEL_REASON, OTHER_LINES, PAYMENT_ID, TWO_LINES, TWO_LINES_TOTAL


def validator(file_name: str) -> Draft202012Validator:
    """A validator of the checked-in schema ``file_name`` that also checks formats (uuid)."""
    schema = json.loads((SCHEMA_DIR / file_name).read_text())
    return Draft202012Validator(schema, format_checker=FormatChecker())


@pytest.fixture
def service() -> Iterator[OrderService]:
    with OrderService({"PERSISTENCE_MODULE": "eventsourcing.popo"}) as service:
        yield service


@pytest.fixture
def stored_events(service: OrderService) -> list[OrderEvent]:
    """Stored events of every type: one order completed, one cancelled after payment."""
    completed = service.place_order("customer-1", TWO_LINES, "EUR", correlation_id="corr-1")
    service.change_lines(completed.order_id, OTHER_LINES)
    service.confirm_payment(completed.order_id, PAYMENT_ID, Decimal(9))
    service.ship(completed.order_id)
    service.complete(completed.order_id)
    cancelled = service.place_order("customer-2", TWO_LINES, "EUR")
    service.confirm_payment(cancelled.order_id, "pay-2", TWO_LINES_TOTAL, causation_id="msg-7")
    service.cancel(cancelled.order_id, CANCEL_REASON)
    return [
        event
        for order_id in (completed.order_id, cancelled.order_id)
        for event in service.events.get(order_id)
        if isinstance(event, OrderEvent)
    ]


def published(event: OrderEvent) -> dict[str, Any]:
    """The envelope of ``event`` as a consumer receives it: parsed JSON."""
    document: dict[str, Any] = json.loads(to_envelope(event).model_dump_json(by_alias=True))
    return document


def test_the_checked_in_schema_files_match_the_models() -> None:
    """Given the models When their schemas are rendered
    Then the checked-in files hold exactly that text, and no other schema file exists."""
    rendered = rendered_schemas()
    stale = {path.name for path in SCHEMA_DIR.glob("*.schema.json")} - set(rendered)
    drifted = [
        name
        for name, text in rendered.items()
        if not (SCHEMA_DIR / name).exists() or (SCHEMA_DIR / name).read_text() != text
    ]
    advice = (
        "the JSON Schema files drifted from schemas/contract.py: run `python -m schemas.generate`"
    )
    assert not drifted, f"{advice} ({', '.join(drifted)})"
    assert not stale, f"{advice}, then delete {', '.join(sorted(stale))}"


def test_every_published_event_validates_against_the_checked_in_schemas(
    stored_events: list[OrderEvent],
) -> None:
    """Given stored events of every type When each is mapped to its envelope
    Then the JSON validates against its detail-type's file and the envelope file,
    and parses back to the same envelope."""
    any_envelope = validator("envelope.schema.json")
    for event in stored_events:
        document = published(event)
        validator(f"{document['detail-type']}.schema.json").validate(document)
        any_envelope.validate(document)
        assert ENVELOPE.validate_python(document) == to_envelope(event)
    assert {published(event)["detail-type"] for event in stored_events} == {
        event_type.__name__ for event_type in ORDER_EVENT_TYPES
    }


def test_the_detail_describes_the_order_as_the_event_left_it(
    stored_events: list[OrderEvent],
) -> None:
    """Given the events of an order that was paid and cancelled When they are published
    Then each detail has the order id, customer, public status, total as a decimal string and
    its currency, stream version and trace, and the detail-type's own fields."""
    placed, paid, cancelled = (published(event)["detail"] for event in stored_events[-3:])
    order_id = str(stored_events[-1].originator_id)
    assert [
        (d["orderId"], d["customerId"], d["amount"], d["currency"])
        for d in (placed, paid, cancelled)
    ] == [(order_id, "customer-2", "10.00", "EUR")] * 3
    assert [(d["status"], d["streamVersion"]) for d in (placed, paid, cancelled)] == [
        ("pending", 1),
        ("processing", 2),
        ("cancelled", 3),
    ]
    assert (paid["paymentId"], paid["causationId"], cancelled["reason"]) == (
        "pay-2",
        "msg-7",
        CANCEL_REASON,
    )
    assert placed["lines"][0] == {"sku": "SKU-1", "quantity": 2, "unitPrice": "1.50"}
    assert published(stored_events[0])["detail"]["correlationId"] == "corr-1"


def test_an_events_id_is_stable_across_republishing_and_unique(
    service: OrderService, stored_events: list[OrderEvent]
) -> None:
    """Given stored events When they are read from the store again and republished
    Then each gets the same id as before, and no two events share one."""
    order_ids = dict.fromkeys(event.originator_id for event in stored_events)
    reread = [event for order_id in order_ids for event in service.events.get(order_id)]
    first_ids = [published(event)["id"] for event in stored_events]
    assert [str(event_id(event)) for event in reread if isinstance(event, OrderEvent)] == first_ids
    assert len(set(first_ids)) == len(first_ids)


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", "-1.00"), ("status", "shipped"), ("orderId", "not-a-uuid")],
)
def test_an_envelope_with_a_bad_field_is_rejected_naming_the_field(
    stored_events: list[OrderEvent], field: str, value: str
) -> None:
    """Given a valid OrderPlaced envelope When ``field`` is set to a bad value
    Then both the model and the checked-in JSON Schema reject it, naming the field."""
    document = published(stored_events[0])
    document["detail"][field] = value

    with pytest.raises(ValidationError) as refused:
        ENVELOPE.validate_python(document)
    errors = list(validator("OrderPlaced.schema.json").iter_errors(document))

    assert f"detail.{field}" in str(refused.value)
    assert errors
    assert all(f"['detail']['{field}']" in str(error) for error in errors)


def test_a_float_amount_is_rejected_by_the_model(stored_events: list[OrderEvent]) -> None:
    """Given an envelope whose amount is a JSON number When the model reads it
    Then it is refused, naming the amount (amounts are decimal strings)."""
    document = published(stored_events[0])
    document["detail"]["amount"] = 10.0
    with pytest.raises(ValidationError, match=r"detail\.amount"):
        ENVELOPE.validate_python(document)
