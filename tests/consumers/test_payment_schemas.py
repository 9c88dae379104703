"""The payment-service envelopes: the contract users were given, and their schema files."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from adapters.consumers.dispatcher import PoisonMessageError, parse_envelope
from schemas.contract import to_json
from schemas.payments import PaymentFailedEnvelope, PaymentSucceededEnvelope
from tests.consumers.test_saga import failed, succeeded
from tests.unit.test_schemas import GIVEN_CONTRACT, checker, validator


@pytest.mark.parametrize(
    "envelope",
    [succeeded(uuid4(), "25.50"), failed(uuid4())],
    ids=["succeeded", "failed"],
)
def test_payment_envelopes_keep_the_given_contract_and_their_schema_files(
    envelope: PaymentSucceededEnvelope | PaymentFailedEnvelope,
) -> None:
    document = json.loads(to_json(envelope))
    checker(GIVEN_CONTRACT).validate(document)
    validator(f"{envelope.detail_type}.schema.json").validate(document)
    assert isinstance(document["detail"]["amount"], float)  # a JSON number, not a string
    assert parse_envelope(to_json(envelope)) == envelope


def test_a_payment_the_schema_file_rejects_the_model_rejects_too() -> None:
    document = json.loads(to_json(succeeded(uuid4(), "10")))
    document["detail"]["amount"] = "10.00"
    assert list(validator("PaymentSucceeded.schema.json").iter_errors(document))
    with pytest.raises(PoisonMessageError, match=r"detail\.amount"):
        parse_envelope(json.dumps(document))
    document["detail"]["amount"] = 10
    document["source"] = "order-service"
    assert list(validator("PaymentSucceeded.schema.json").iter_errors(document))
    with pytest.raises(PoisonMessageError, match="source"):
        parse_envelope(json.dumps(document))
