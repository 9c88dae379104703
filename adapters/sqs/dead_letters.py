"""Amazon SQS dead-letter queues: what a dead letter carries, listing, and redrive.

A dead letter keeps its body and its own message attributes, plus the three of ours (why, from
which queue, after how many receives). SQS allows 10 attributes per message: when the message's
own and ours would exceed that, its own are packed, losslessly, into one more attribute of ours
(:data:`PACKED_ATTRIBUTE`, JSON), so dead-lettering never fails for the attribute count, and
redrive unpacks them again.

Redrive is receive, send back, delete, and at least once: a crash between the send and the
delete leaves a copy on both queues (consumers deduplicate on the event id). It never drops and
never wedges:

- it polls until a *long* poll (``WaitTimeSeconds`` > 0, which asks every SQS server) finds
  nothing, so a short poll's empty answer while messages remain does not end it;
- each send is cut to the request size limit by bytes (body and attributes, as SQS counts them),
  not only to 10 entries;
- what a partly refused send accepted is deleted from the dead-letter queue before the refusal
  is raised (:class:`RedriveError`, which says how many were moved): nothing is sent twice by a
  rerun, and the refused messages stay on the dead-letter queue, visible again at once.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adapters.consumers.dispatcher import PoisonMessageError, failure_reason, parse_envelope

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, MessageTypeDef

logger = logging.getLogger(__name__)

REASON_ATTRIBUTE = "dead-letter-reason"
SOURCE_ATTRIBUTE = "dead-letter-source"
RECEIVES_ATTRIBUTE = "dead-letter-receives"
PACKED_ATTRIBUTE = "dead-letter-attributes"
OUR_ATTRIBUTES = frozenset(
    {REASON_ATTRIBUTE, SOURCE_ATTRIBUTE, RECEIVES_ATTRIBUTE, PACKED_ATTRIBUTE}
)
MAX_ATTRIBUTES = 10
"""SQS's limit of message attributes per message."""
MAX_REQUEST_BYTES = 1_048_576
"""SQS's limit on a message and on a whole batch request (1 MiB since 2026; 256 KB before)."""
MAX_BATCH = 10


class RedriveError(RuntimeError):
    """The target queue refused some messages; ``moved`` were moved (and deleted from the
    dead-letter queue) before; the refused ones are still on the dead-letter queue."""

    def __init__(self, target_url: str, moved: int, failures: Sequence[str]) -> None:
        super().__init__(
            f"redrive to {target_url} refused {len(failures)} message(s) after moving {moved}: "
            f"{failures[0]}"
        )
        self.moved = moved
        self.failures = list(failures)


def _text(value: str) -> MessageAttributeValueTypeDef:
    return {"DataType": "String", "StringValue": value}


def own_attributes(message: MessageTypeDef) -> dict[str, Any]:
    """The message's own attributes (ours removed, packed ones unpacked): what it was sent with."""
    attributes = message.get("MessageAttributes", {})
    own = {name: value for name, value in attributes.items() if name not in OUR_ATTRIBUTES}
    packed = attributes.get(PACKED_ATTRIBUTE)
    if packed is not None:
        for name, value in json.loads(packed["StringValue"]).items():
            if "BinaryValue" in value:
                value["BinaryValue"] = base64.b64decode(value["BinaryValue"])
            own[name] = value
    return own


def dead_letter_attributes(
    message: MessageTypeDef, reason: str, source: str, receives: int
) -> dict[str, Any]:
    """The attributes of ``message``'s dead letter: its own and ours, at most
    :data:`MAX_ATTRIBUTES` (its own packed into one when they would not fit beside ours)."""
    own = own_attributes(message)
    ours: dict[str, Any] = {
        REASON_ATTRIBUTE: _text(reason[:1000]),
        SOURCE_ATTRIBUTE: _text(source),
        RECEIVES_ATTRIBUTE: _text(str(receives)),
    }
    if len(own) + len(ours) <= MAX_ATTRIBUTES:
        return own | ours
    packed = {
        name: {
            "DataType": value["DataType"],
            **(
                {"BinaryValue": base64.b64encode(value["BinaryValue"]).decode()}
                if "BinaryValue" in value
                else {"StringValue": value["StringValue"]}
            ),
        }
        for name, value in own.items()
    }
    return ours | {PACKED_ATTRIBUTE: _text(json.dumps(packed))}


def message_bytes(body: str, attributes: Mapping[str, Any]) -> int:
    """A message's size as SQS counts it: the body and each attribute's name, type and value."""
    size = len(body.encode())
    for name, value in attributes.items():
        payload = value.get("BinaryValue")
        if payload is None:
            payload = str(value.get("StringValue", "")).encode()
        size += len(name.encode()) + len(str(value["DataType"]).encode()) + len(payload)
    return size


@dataclass(frozen=True)
class DeadLetter:
    """A message on a dead-letter queue and why it is there."""

    message_id: str
    body: str
    reason: str
    receives: str
    source: str


def _receive(
    client: SQSClient, url: str, count: int, wait_seconds: int, visibility: int
) -> list[MessageTypeDef]:
    return client.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=count,
        WaitTimeSeconds=wait_seconds,
        VisibilityTimeout=visibility,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])


def dead_letters(
    client: SQSClient, dead_letter_url: str, limit: int = 100, *, wait_seconds: int = 2
) -> list[DeadLetter]:
    """Up to ``limit`` messages of a dead-letter queue, with their reasons, left in place.

    Reads until a long poll of ``wait_seconds`` finds nothing (or ``limit`` are read). A
    message SQS moved itself (a worker died, or the Lambda path) has no recorded reason: the
    body is checked against the contract, and what is wrong with it, if anything, is shown.
    Each message read is made visible again at the end; its receive count on the DLQ grows.
    """
    seen: dict[str, DeadLetter] = {}
    handles: list[str] = []
    while len(seen) < limit:
        messages = _receive(
            client, dead_letter_url, min(MAX_BATCH, limit - len(seen)), wait_seconds, 60
        )
        if not messages:
            break
        for message in messages:
            handles.append(message["ReceiptHandle"])
            attributes = message.get("MessageAttributes", {})
            seen[message["MessageId"]] = DeadLetter(
                message_id=message["MessageId"],
                body=message["Body"],
                reason=_attribute(attributes, REASON_ATTRIBUTE) or _diagnosis(message["Body"]),
                receives=_attribute(attributes, RECEIVES_ATTRIBUTE) or "?",
                source=_attribute(attributes, SOURCE_ATTRIBUTE) or "?",
            )
    for start in range(0, len(handles), MAX_BATCH):
        client.change_message_visibility_batch(
            QueueUrl=dead_letter_url,
            Entries=[
                {"Id": str(number), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for number, handle in enumerate(handles[start : start + MAX_BATCH])
            ],
        )
    return list(seen.values())


def redrive(
    client: SQSClient,
    dead_letter_url: str,
    target_url: str,
    limit: int | None = None,
    *,
    wait_seconds: int = 2,
    max_request_bytes: int = MAX_REQUEST_BYTES,
) -> int:
    """Move messages from the dead-letter queue back to ``target_url`` (see the module
    docstring) until a long poll of ``wait_seconds`` finds none, or ``limit`` moved; the body
    and the message's own attributes go back as they were sent. Returns the number moved;
    raises :class:`RedriveError` on a refusal, after deleting what was sent."""
    if wait_seconds < 1:
        msg = f"wait_seconds must be at least 1 (a long poll), not {wait_seconds}"
        raise ValueError(msg)
    moved = 0
    while limit is None or moved < limit:
        want = MAX_BATCH if limit is None else min(MAX_BATCH, limit - moved)
        messages = _receive(client, dead_letter_url, want, wait_seconds, 60)
        if not messages:
            return moved
        for batch in _batches(messages, max_request_bytes):
            moved += _send_and_delete(client, dead_letter_url, target_url, batch, moved)
    return moved


def _batches(
    messages: Sequence[MessageTypeDef], max_request_bytes: int
) -> Iterator[list[tuple[MessageTypeDef, dict[str, Any]]]]:
    """The messages with the attributes to send them with, in runs that fit one request."""
    batch: list[tuple[MessageTypeDef, dict[str, Any]]] = []
    size = 0
    for message in messages:
        attributes = own_attributes(message)
        entry = message_bytes(message["Body"], attributes)
        if batch and size + entry > max_request_bytes:
            yield batch
            batch, size = [], 0
        batch.append((message, attributes))
        size += entry
    if batch:
        yield batch


def _send_and_delete(
    client: SQSClient,
    dead_letter_url: str,
    target_url: str,
    batch: Sequence[tuple[MessageTypeDef, dict[str, Any]]],
    moved: int,
) -> int:
    """Send ``batch`` to the target, delete what it accepted; the number accepted."""
    sent = client.send_message_batch(
        QueueUrl=target_url,
        Entries=[
            {"Id": str(number), "MessageBody": message["Body"], "MessageAttributes": attributes}
            for number, (message, attributes) in enumerate(batch)
        ],
    )
    accepted = [batch[int(entry["Id"])][0] for entry in sent.get("Successful", [])]
    if accepted:
        deleted = client.delete_message_batch(
            QueueUrl=dead_letter_url,
            Entries=[
                {"Id": str(number), "ReceiptHandle": message["ReceiptHandle"]}
                for number, message in enumerate(accepted)
            ],
        )
        for failure in deleted.get("Failed", []):
            # Sent but still on the DLQ: a later redrive sends it again (consumers deduplicate).
            logger.warning("redriven message not deleted from the DLQ: %s", failure["Message"])
    if failed := sent.get("Failed", []):
        # The refused ones are visible again at once, for the rerun after the cause is fixed.
        client.change_message_visibility_batch(
            QueueUrl=dead_letter_url,
            Entries=[
                {
                    "Id": str(number),
                    "ReceiptHandle": batch[int(failure["Id"])][0]["ReceiptHandle"],
                    "VisibilityTimeout": 0,
                }
                for number, failure in enumerate(failed)
            ],
        )
        raise RedriveError(
            target_url, moved + len(accepted), [failure["Message"] for failure in failed]
        )
    return len(accepted)


def _attribute(attributes: Mapping[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    return None if value is None else str(value.get("StringValue", ""))


def _diagnosis(body: str) -> str:
    try:
        parse_envelope(body)
    except PoisonMessageError as error:
        return failure_reason(error)
    return "no reason recorded (moved by SQS after its receives ran out)"
