"""The one cancellation DynamoDB Local never produces: ``TransactionConflict``.

DynamoDB Local runs transactions one at a time, so a concurrent transaction on the log head
never shows there as a ``TransactionConflict`` cancellation, as it does on AWS. This drives
the recorder with botocore's ``Stubber`` (no server) to check it re-reads the head and
re-numbers rather than report a conflict.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import boto3
import pytest
from botocore.stub import ANY, Stubber
from eventsourcing.persistence import OperationalError, StoredEvent

from adapters.dynamodb import DynamoDBApplicationRecorder, DynamoDBDatastore


def test_a_transaction_conflict_is_a_lost_race_renumbered_after_reading_the_head() -> None:
    client = boto3.session.Session().client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="dummy",
        aws_secret_access_key="dummy",
    )
    recorder = DynamoDBApplicationRecorder(DynamoDBDatastore(client, "events"), "app_events")
    write: dict[str, Any] = {"TransactItems": ANY, "ReturnConsumedCapacity": "TOTAL"}
    head = {"pk": {"S": "app_events#loghead"}, "sk": {"N": "0"}}
    cancelled = [{"Code": "None"}] * 3 + [{"Code": "TransactionConflict"}]
    with Stubber(client) as stubber:
        _mode_recorded(stubber)
        stubber.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            expected_params=write,
            response_meta={},
            modeled_fields={"CancellationReasons": cancelled},
        )
        stubber.add_response(
            "get_item",
            {"Item": {**head, "n": {"N": "5"}}},
            {
                "TableName": "events",
                "Key": head,
                "ConsistentRead": True,
                "ReturnConsumedCapacity": "TOTAL",
            },
        )
        stubber.add_response("transact_write_items", {}, write)
        ids = recorder.insert_events([StoredEvent(uuid4(), 1, "topic", b"{}")])
        stubber.assert_no_pending_responses()
    assert ids == [6]


def _mode_recorded(stubber: Stubber) -> None:
    """The recorder's first save reads the namespace's write mode: it is this recorder's."""
    mode = {"pk": {"S": "app_events#mode"}, "sk": {"N": "0"}, "m": {"S": "transactional"}}
    stubber.add_response("get_item", {"Item": mode})


def _stubbed_recorder() -> tuple[Any, DynamoDBApplicationRecorder]:
    client = boto3.session.Session().client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="dummy",
        aws_secret_access_key="dummy",
    )
    return client, DynamoDBApplicationRecorder(DynamoDBDatastore(client, "events"), "app_events")


def test_a_cancellation_without_reasons_is_an_operational_error() -> None:
    client, recorder = _stubbed_recorder()
    with Stubber(client) as stubber:
        _mode_recorded(stubber)
        stubber.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            response_meta={},
        )
        with pytest.raises(OperationalError, match="without reasons"):
            recorder.insert_events([StoredEvent(uuid4(), 1, "topic", b"{}")])


def test_a_lost_race_pauses_without_holding_the_save_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lost race for the log head is re-sent after a pause taken outside the lock that
    the recorder's other saves need."""
    client, recorder = _stubbed_recorder()
    held_while_pausing: list[bool] = []
    monkeypatch.setattr(
        "adapters.dynamodb.transactional.time.sleep",
        lambda seconds: held_while_pausing.append(recorder._numbering_lock.locked()),
    )
    head = {"pk": {"S": "app_events#loghead"}, "sk": {"N": "0"}, "n": {"N": "7"}}
    lost = [{"Code": "None"}] * 3 + [{"Code": "ConditionalCheckFailed", "Item": head}]
    with Stubber(client) as stubber:
        _mode_recorded(stubber)
        stubber.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            response_meta={},
            modeled_fields={"CancellationReasons": lost},
        )
        stubber.add_response("transact_write_items", {})
        ids = recorder.insert_events([StoredEvent(uuid4(), 1, "topic", b"{}")])
    assert ids == [8]
    assert held_while_pausing == [False]
