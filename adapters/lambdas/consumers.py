"""AWS Lambda entry point of the SQS consumers: Powertools' batch processing.

:func:`batch_handler` turns the record handler every transport shares (a
``adapters.consumers.dispatcher.Dispatcher``) into a Lambda handler of SQS events: Powertools'
``BatchProcessor`` runs it on each record's body and ``process_partial_response`` returns
``{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}`` naming exactly the records that
raised, so Lambda deletes the rest and SQS retries (then dead-letters) only those. A batch whose
every record failed is reported the same way, not raised. Each failure is logged in one line
naming the message and the problem, as the SQS worker does.

:func:`handler` is the function to deploy: it builds its consumers from the settings on the
first call (``adapters.bootstrap.consumers``), never at import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from adapters.bootstrap.consumers import record_handler
from adapters.bootstrap.service import metrics_of
from adapters.consumers.dispatcher import failure_reason
from adapters.observability.observed import observe_consumer
from adapters.observability.telemetry import MetricsSink, get_logger, lambda_json_logs
from adapters.settings import Settings
from adapters.sns.idempotency import register_lambda_context

logger = logging.getLogger(__name__)

NEEDS = frozenset({"backend", "events_table", "views_table", "consumers"})

LambdaHandler = Callable[[dict[str, Any], Any], PartialItemFailureResponse]


def batch_handler(record_handler: Callable[[str], None]) -> LambdaHandler:
    """A Lambda handler of SQS events that runs ``record_handler`` on each body."""

    def handle_record(record: SQSRecord) -> None:
        try:
            record_handler(record.body)
        except Exception as error:
            logger.warning(
                "message %s failed (receive %s): %s",
                record.message_id,
                record.attributes.approximate_receive_count,
                failure_reason(error),
            )
            raise

    def handle(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return process_partial_response(
            event=event, record_handler=handle_record, processor=processor, context=context
        )

    return handle


@cache
def _configured() -> tuple[LambdaHandler, MetricsSink]:
    settings = Settings.load()
    lambda_json_logs(settings.in_lambda)
    metrics = metrics_of(settings)
    handle = observe_consumer(record_handler(settings), metrics, get_logger(), settings.consumers)
    return batch_handler(handle), metrics


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """The deployed entry point (see the module docstring); each message counts as a
    ``ConsumerSuccesses`` or ``ConsumerFailures`` of its consumer (EMF, flushed per call)."""
    handle, metrics = _configured()
    if context is not None:
        register_lambda_context(context)  # in-progress records expire with this invocation
    try:
        return handle(event, context)
    finally:
        metrics.flush()
