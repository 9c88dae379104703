"""The public contract: checked-in JSON Schema files, the envelope mapping, and refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import ValidationError

from orders import ORDER_EVENT_TYPES, OrderEvent, OrderLine, OrderService
from orders.values import MAX_DIGITS, digit_count
from schemas import ENVELOPE, event_id, parse_envelope, to_envelope, to_json
from schemas.contract import Line, OrderPlacedEnvelope
from schemas.generate import SCHEMA_DIR, rendered_schemas
from tests.unit.builders import CANCEL_REASON, OTHER_LINES, PAYMENT_ID, TWO_LINES, TWO_LINES_TOTAL

GIVEN_CONTRACT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["version", "id", "detail-type", "source", "time", "detail"],
    "properties": {
        "version": {"const": "1.0"},
        "id": {"type": "string", "format": "uuid"},
        "detail-type": {"type": "string"},
        "source": {"enum": ["order-service", "payment-service"]},
        "time": {"type": "string", "format": "date-time"},
        "detail": {
            "type": "object",
            "required": ["orderId"],
            "properties": {
                "orderId": {"type": "string", "format": "uuid"},
                "customerId": {"type": "string"},
                "status": {"enum": ["pending", "processing", "completed", "cancelled"]},
                "amount": {"type": "number", "minimum": 0},
            },
        },
    },
}
"""The envelope as users were given it, written out by hand: what no change may break."""


def validator(file_name: str) -> Draft202012Validator:
    """A validator of the checked-in schema ``file_name`` that also checks formats (uuid)."""
    return checker(json.loads((SCHEMA_DIR / file_name).read_text()))


def checker(schema: dict[str, Any]) -> Draft202012Validator:
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
    document: dict[str, Any] = json.loads(to_json(to_envelope(event)))
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
        assert parse_envelope(to_json(to_envelope(event))) == to_envelope(event)
    assert {published(event)["detail-type"] for event in stored_events} == {
        event_type.__name__ for event_type in ORDER_EVENT_TYPES
    }


def test_the_detail_describes_the_order_as_the_event_left_it(
    stored_events: list[OrderEvent],
) -> None:
    """Given the events of an order that was paid and cancelled When they are published
    Then each detail has the order id, customer, public status, total as a JSON number and
    its currency, stream version and trace, and the detail-type's own fields."""
    placed, paid, cancelled = (published(event)["detail"] for event in stored_events[-3:])
    order_id = str(stored_events[-1].originator_id)
    assert [
        (d["orderId"], d["customerId"], d["amount"], d["currency"])
        for d in (placed, paid, cancelled)
    ] == [(order_id, "customer-2", 10.0, "EUR")] * 3
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
    assert placed["lines"][0] == {"sku": "SKU-1", "quantity": 2, "unitPrice": 1.5}
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


def test_a_python_float_amount_is_rejected_by_the_model(stored_events: list[OrderEvent]) -> None:
    """Given an envelope whose amount is a Python float When the model reads it
    Then it is refused, naming the amount (read JSON numbers as Decimal: parse_envelope)."""
    document = published(stored_events[0])
    document["detail"]["amount"] = 10.0
    with pytest.raises(ValidationError, match=r"detail\.amount"):
        ENVELOPE.validate_python(document)


@pytest.mark.parametrize("amount", ["1e3", "01.5", " 3 ", "12.50", True, 1234567890123456])
@pytest.mark.parametrize("field", ["amount", "unitPrice"])
def test_an_amount_the_schema_files_reject_is_rejected_by_the_model(
    stored_events: list[OrderEvent], amount: object, field: str
) -> None:
    """Given an envelope whose amount (or a line's unit price) is a string, a boolean or a
    number of 16 digits When the JSON is read by the model, as Python or as JSON text
    Then it is refused naming the field; every string and boolean fails the schema files too."""
    document = published(stored_events[0])
    target = document["detail"] if field == "amount" else document["detail"]["lines"][0]
    target[field] = amount

    with pytest.raises(ValidationError, match=rf"detail\.(lines\.0\.)?{field}"):
        ENVELOPE.validate_python(document)
    with pytest.raises(ValidationError, match=rf"detail\.(lines\.0\.)?{field}"):
        ENVELOPE.validate_json(json.dumps(document))
    if not isinstance(amount, int) or isinstance(amount, bool):
        assert list(validator("OrderPlaced.schema.json").iter_errors(document))


def test_amounts_are_json_numbers_with_the_decimals_own_digits(service: OrderService) -> None:
    """Given an order of 3 x 0.10 (total 0.30) When its OrderPlaced is written
    Then the JSON holds the numbers 0.30 and 0.10 digit for digit (no float's 0.30000000000000004),
    parse_envelope reads back the same Decimals digit for digit, and validate_json the values."""
    placed = service.place_order("customer-1", [OrderLine("SKU-1", 3, Decimal("0.10"))], "EUR")
    (event,) = service.events.get(placed.order_id)
    assert isinstance(event, OrderEvent)
    text = to_json(to_envelope(event))

    assert '"amount":0.30,' in text
    assert '"unitPrice":0.10}' in text
    exact = parse_envelope(text)
    assert isinstance(exact, OrderPlacedEnvelope)
    assert str(exact.detail.amount) == "0.30"
    assert str(exact.detail.lines[0].unit_price) == "0.10"
    assert ENVELOPE.validate_json(text).detail.amount == Decimal("0.3")


def test_pydantic_json_writer_refuses_amounts_instead_of_writing_them_wrong(
    stored_events: list[OrderEvent],
) -> None:
    """Given an envelope When pydantic's own JSON writer is asked for it
    Then it refuses, pointing to to_json (it could only write a string or a float)."""
    with pytest.raises(Exception, match=r"schemas\.to_json"):
        to_envelope(stored_events[0]).model_dump_json()


def test_every_published_envelope_keeps_the_contract_users_were_given(
    stored_events: list[OrderEvent],
) -> None:
    """Given stored events of every type When they are published
    Then each validates against the contract as given, has exactly its top-level fields,
    and every checked-in schema file declares each given field as given (type, format, enum)."""
    given = checker(GIVEN_CONTRACT)
    for event in stored_events:
        document = published(event)
        given.validate(document)
        assert set(document) == set(GIVEN_CONTRACT["properties"])
    contract = {key: value for key, value in GIVEN_CONTRACT.items() if key != "$schema"}
    for path in SCHEMA_DIR.glob("*.schema.json"):
        if path.name.startswith("Payment") and path.name != "PaymentConfirmed.schema.json":
            continue  # consumed payment-service events: tests/consumers/test_payment_schemas.py
        schema = json.loads(path.read_text())
        defs = schema.get("$defs", {})
        for envelope in schema.get("oneOf", [schema]):
            assert_declares(envelope, contract, defs, path.name)


def assert_declares(
    declared: dict[str, Any], given: dict[str, Any], defs: dict[str, Any], where: str
) -> None:
    """``declared`` (a schema, or a reference into ``defs``) says at least what ``given`` says."""
    declared = defs[declared["$ref"].split("/")[-1]] if "$ref" in declared else declared
    for keyword, value in given.items():
        if keyword == "properties":
            for name, expected in value.items():
                assert_declares(declared["properties"][name], expected, defs, f"{where} {name}")
        elif keyword == "required":
            assert set(value) <= set(declared["required"]), f"{where}: required {value}"
        elif keyword == "enum":  # Narrowed (an order event's source) is still what was given.
            narrowed = declared.get("enum", [declared.get("const")])
            assert set(narrowed) <= set(value), f"{where}: {narrowed} not within {value}"
        else:
            assert declared.get(keyword) == value, (
                f"{where}: {keyword} is {declared.get(keyword)!r}, the contract says {value!r}"
            )


@given(
    st.decimals(min_value=0, max_value=Decimal("999999999999999"), allow_nan=False, places=None)
    .filter(lambda amount: digit_count(amount) <= MAX_DIGITS)
    .map(lambda amount: amount.copy_abs())
)
def test_every_amount_the_domain_allows_is_written_exactly_and_read_exactly_as_a_double(
    amount: Decimal,
) -> None:
    """Given any amount of at most MAX_DIGITS digits When a line with it is written as JSON
    Then the text holds its digits, a reader of doubles gets its value, and the model its digits."""
    line = Line(sku="SKU-1", quantity=1, unit_price=amount)
    text = to_json(line)
    assert text == f'{{"sku":"SKU-1","quantity":1,"unitPrice":{amount}}}'
    assert Decimal(repr(json.loads(text)["unitPrice"])) == amount
    read = Line.model_validate(json.loads(text, parse_float=Decimal))
    assert read.unit_price.as_tuple() == amount.as_tuple()


def test_fields_the_bus_adds_on_delivery_are_allowed_but_not_in_the_detail(
    stored_events: list[OrderEvent],
) -> None:
    """Given a published envelope as a queue receives it (the bus adds account, region and
    resources) When it is read Then the files and the model accept it as the same envelope;
    an unknown field in ``detail`` is refused by both."""
    document = published(stored_events[0])
    delivered = {**document, "account": "123456789012", "region": "eu-west-1", "resources": []}
    validator("OrderPlaced.schema.json").validate(delivered)
    assert parse_envelope(json.dumps(delivered)) == to_envelope(stored_events[0])

    delivered["detail"] = {**document["detail"], "account": "123456789012"}
    assert list(validator("OrderPlaced.schema.json").iter_errors(delivered))
    with pytest.raises(ValidationError, match=r"detail\.account"):
        parse_envelope(json.dumps(delivered))
