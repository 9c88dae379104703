"""Side effects once per event: Powertools' idempotency utility on a DynamoDB table.

:func:`once_per_event` wraps a handler so that an event id it has completed is skipped on
redelivery. Before the handler runs, Powertools writes an ``INPROGRESS`` record keyed by (a hash
of) the event id under a conditional put; after it returns, the record becomes ``COMPLETED``. A
second delivery meanwhile finds the record and does not run the handler (``INPROGRESS``: it
fails, to be retried; ``COMPLETED``: it succeeds without effect). A handler that raises has its
record deleted, so the retry runs it.

An ``INPROGRESS`` record left by a crash expires when the Lambda invocation holding it ends: the
Lambda entry point passes its real context to :func:`register_lambda_context` on every
invocation. Outside Lambda (the CLI worker) it expires after ``in_progress_seconds`` (default
30, the worker's visibility timeout; far longer than a publish takes); a redelivery before
then fails (the message is retried), one after it runs the handler. So what a crash can still do:

- between the publish and the ``COMPLETED`` update: the retry publishes again, **one duplicate
  notification** on a standard topic (SNS has no conditional publish to close that gap); on a
  FIFO topic SNS drops it, the publish carrying the event id as ``MessageDeduplicationId``,
  if the retry comes within SNS's 5-minute deduplication window;
- between the ``INPROGRESS`` put and the publish: the retry sends the first notification, late;
  nothing is lost or duplicated.

Lost ``Publish`` answers are the publisher's to settle (:mod:`adapters.sns.publisher`): a FIFO
topic deduplicates the re-send; on a standard topic an unknown outcome counts as sent by default
(one notification; a request that never reached SNS is then not sent), or, with
``resend_unknown``, fails the handler so the retry sends it again (one extra per lost answer).
Every notification carries the event id (``eventId``) for subscribers to deduplicate on.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from adapters.deploy.resources import MissingResourceError, missing
from schemas.contract import Envelope

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEFAULT_EXPIRY_SECONDS = 7 * 24 * 3600
"""How long a completed event id is remembered: longer than a message can live in the queue
and its DLQ before a redrive (SQS keeps messages 14 days at most: redrive within 7)."""


_CONFIGS: weakref.WeakSet[IdempotencyConfig] = weakref.WeakSet()
"""The configurations of every handler wrapped in this process."""


def register_lambda_context(context: Any) -> None:
    """Give every wrapped handler the invocation's real Lambda context, so an ``INPROGRESS``
    record expires with the invocation (call it at the start of each invocation)."""
    for config in _CONFIGS:
        config.register_lambda_context(context)


class _Deadline:
    """Stands in for a Lambda context: how long a handler may hold an ``INPROGRESS`` record."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return self.seconds * 1000


def once_per_event(
    handler: Callable[[Envelope], None],
    persistence: DynamoDBPersistenceLayer,
    *,
    name: str,
    expires_after_seconds: int = DEFAULT_EXPIRY_SECONDS,
    in_progress_seconds: int = 30,
) -> Callable[[Envelope], None]:
    """``handler``, run at most once per event id (see the module docstring); ``name`` prefixes
    the records' keys, so two wrapped handlers never share records."""
    config = IdempotencyConfig(expires_after_seconds=expires_after_seconds)
    config.register_lambda_context(_Deadline(in_progress_seconds))  # type: ignore[arg-type]
    _CONFIGS.add(config)

    def run(*, event_id: str, envelope: Envelope) -> None:
        handler(envelope)

    run_once = idempotent_function(
        run,
        data_keyword_argument="event_id",
        persistence_store=persistence,
        config=config,
        key_prefix=name,
    )

    def once(envelope: Envelope) -> None:
        run_once(event_id=str(envelope.id), envelope=envelope)

    return once


def dynamodb_persistence(client: DynamoDBClient, table_name: str) -> DynamoDBPersistenceLayer:
    """The Powertools persistence layer on ``table_name`` (partition key ``id``, a string)."""
    return DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)


def require_idempotency_table(client: DynamoDBClient, table_name: str) -> None:
    """:class:`MissingResourceError` naming ``table_name`` unless the table exists."""
    try:
        client.describe_table(TableName=table_name)
    except client.exceptions.ResourceNotFoundException:
        raise MissingResourceError(missing(f"idempotency table {table_name!r}")) from None


def create_idempotency_table(client: DynamoDBClient, table_name: str) -> None:
    """Create the table Powertools expects (on-demand, TTL on ``expiration``) if missing."""
    try:
        client.create_table(
            TableName=table_name,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except client.exceptions.ResourceInUseException:
        return
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )
