"""Amazon SQS: the consumer worker (the dead-letter tools are in :mod:`adapters.sqs.dead_letters`).

:class:`SqsConsumer` long-polls one queue in batches and hands each body to a record handler
(``adapters.consumers.dispatcher.Dispatcher``, the same one the Lambda handler and the local bus
use).
What succeeded is deleted in one batch call; what failed stays on the queue and comes back
after ``retry_delay`` seconds (or the queue's visibility timeout); a failure on the message's
last allowed receive (the queue's ``maxReceiveCount``) sends it to the dead-letter queue with the
reason as a message attribute (within SQS's 10 attributes), then deletes it. While a batch is in
work its messages' visibility is extended, so a slow handler never lets them reappear to another
worker. One failing message never fails the rest of its batch. The queue's redrive policy stays
the backstop: a worker that dies mid-batch leaves SQS to dead-letter after the same number of
receives, without a reason.

Dead-lettering is at least once: a crash between the send to the DLQ and the delete leaves a copy
on both queues; redrive (receive, send back, delete) likewise may return one twice. Consumers
deduplicate on the event id, so a copy changes nothing. ``StartMessageMoveTask`` is not used:
it loses the reason, and moto's server does not implement it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from adapters.consumers.dispatcher import failure_reason
from adapters.deploy.resources import missing
from adapters.observability.telemetry import MetricsSink
from adapters.sqs.dead_letters import MAX_BATCH, dead_letter_attributes
from adapters.supervisor import PAUSES, Supervisor
from orders.backoff import Backoff

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)


class QueueError(RuntimeError):
    """A queue cannot be used as asked (missing, no dead-letter queue); the message says why."""


@dataclass(frozen=True)
class RedrivePolicy:
    """Where a queue dead-letters, and after how many receives."""

    dead_letter_url: str
    max_receives: int


def queue_url(client: SQSClient, name_or_url: str) -> str:
    """The URL of a queue given by name or URL; :class:`QueueError` if there is none."""
    if "://" in name_or_url:
        return name_or_url
    try:
        return client.get_queue_url(QueueName=name_or_url)["QueueUrl"]
    except client.exceptions.QueueDoesNotExist:
        raise QueueError(missing(f"queue {name_or_url!r}")) from None


def redrive_policy(client: SQSClient, url: str) -> RedrivePolicy | None:
    """The queue's redrive policy, or None if it has no dead-letter queue."""
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    policy = attributes.get("Attributes", {}).get("RedrivePolicy")
    if not policy:
        return None
    parsed = json.loads(policy)
    dead_letter_name = parsed["deadLetterTargetArn"].rsplit(":", 1)[1]
    return RedrivePolicy(queue_url(client, dead_letter_name), int(parsed["maxReceiveCount"]))


@dataclass
class BatchOutcome:
    """What one poll did: messages received, handled, failed (ids), and dead-lettered."""

    received: int = 0
    succeeded: int = 0
    failed: list[str] = field(default_factory=list)
    dead_lettered: int = 0


class SqsConsumer:
    """Long-polls ``url`` and hands each message body to ``record_handler``.

    ``wait_seconds`` is the long poll (0-20); ``batch_size`` at most 10; ``visibility_timeout``
    the seconds a received batch stays hidden, renewed every third of it while in work;
    ``retry_delay`` the seconds before a failed message may be received again (None: the
    queue's visibility timeout). ``dead_letter`` is the queue's redrive policy (read from the
    queue when not given; None if it has none: failures then only go back on the queue).
    """

    def __init__(
        self,
        client: SQSClient,
        url: str,
        record_handler: Callable[[str], None],
        *,
        batch_size: int = MAX_BATCH,
        wait_seconds: int = 20,
        visibility_timeout: int = 30,
        retry_delay: int | None = None,
        dead_letter: RedrivePolicy | bool | None = True,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            msg = f"batch_size must be 1 to {MAX_BATCH}, not {batch_size}"
            raise ValueError(msg)
        self.client = client
        self.url = url
        self.record_handler = record_handler
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        self.retry_delay = retry_delay
        self.dead_letter = (
            redrive_policy(client, url) if dead_letter is True else dead_letter or None
        )

    def run(
        self,
        stop: threading.Event,
        on_batch: Callable[[BatchOutcome], None] = lambda _: None,
        metrics: MetricsSink | None = None,
        backoff: Backoff = PAUSES,
    ) -> None:
        """Poll until ``stop`` is set; the batch in hand is finished first (graceful stop).
        Supervised: transient SQS errors pause (``backoff``) and go on; a permanent one raises
        :class:`~adapters.supervisor.WorkerStoppedError`."""

        def step() -> None:
            outcome = self.poll()
            if outcome.received:
                on_batch(outcome)

        Supervisor("sqs-worker", stop, metrics, backoff).run(step)

    def poll(self) -> BatchOutcome:
        """Receive one batch, handle each message, delete the successes, settle the failures."""
        messages = self.client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            VisibilityTimeout=self.visibility_timeout,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        outcome = BatchOutcome(received=len(messages))
        if not messages:
            return outcome
        done: list[MessageTypeDef] = []
        failed: list[tuple[MessageTypeDef, str]] = []
        handled = [0]  # how many of ``messages`` are settled: the renewer reads it
        with self._visibility_kept(messages, handled):
            for message in messages:
                try:
                    self.record_handler(message["Body"])
                except Exception as error:  # any failure fails this message alone
                    reason = failure_reason(error)
                    logger.warning(
                        "message %s failed (receive %s of %s): %s",
                        message["MessageId"],
                        _receives(message),
                        self.dead_letter.max_receives if self.dead_letter else "unlimited",
                        reason,
                    )
                    failed.append((message, reason))
                else:
                    done.append(message)
                handled[0] += 1
        self._delete(done)
        outcome.succeeded = len(done)
        outcome.failed = [message["MessageId"] for message, _ in failed]
        outcome.dead_lettered = self._settle(failed)
        return outcome

    @contextmanager
    def _visibility_kept(
        self, messages: list[MessageTypeDef], handled: list[int]
    ) -> Iterator[None]:
        """Every third of the timeout, renew the visibility of the messages after the first
        ``handled[0]`` (those still in work)."""
        finished = threading.Event()

        def renew() -> None:
            while not finished.wait(self.visibility_timeout / 3):
                try:
                    self._renew([m["ReceiptHandle"] for m in messages[handled[0] :]])
                except (BotoCoreError, ClientError) as error:  # the next renewal may succeed
                    logger.warning("visibility renewal failed: %s", error)

        renewer = threading.Thread(target=renew, name="sqs-visibility", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            finished.set()
            renewer.join()

    def _renew(self, handles: list[str]) -> None:
        for start in range(0, len(handles), MAX_BATCH):
            self.client.change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=[
                    {
                        "Id": str(number),
                        "ReceiptHandle": handle,
                        "VisibilityTimeout": self.visibility_timeout,
                    }
                    for number, handle in enumerate(handles[start : start + MAX_BATCH])
                ],
            )

    def _delete(self, messages: list[MessageTypeDef]) -> None:
        for start in range(0, len(messages), MAX_BATCH):
            chunk = messages[start : start + MAX_BATCH]
            response = self.client.delete_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(number), "ReceiptHandle": message["ReceiptHandle"]}
                    for number, message in enumerate(chunk)
                ],
            )
            for failure in response.get("Failed", []):
                # Handled but not deleted: it comes back and its handlers skip it as a duplicate.
                logger.warning("delete of message %s failed: %s", failure["Id"], failure["Message"])

    def _settle(self, failed: list[tuple[MessageTypeDef, str]]) -> int:
        """Dead-letter the failures on their last receive; let the others come back soon."""
        last = [
            (message, reason)
            for message, reason in failed
            if self.dead_letter and _receives(message) >= self.dead_letter.max_receives
        ]
        for message, reason in last:
            self._dead_letter(message, reason)
        self._delete([message for message, _ in last])
        last_ids = {message["MessageId"] for message, _ in last}
        retried = [message for message, _ in failed if message["MessageId"] not in last_ids]
        if self.retry_delay is not None and retried:
            self.client.change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=[
                    {
                        "Id": str(number),
                        "ReceiptHandle": message["ReceiptHandle"],
                        "VisibilityTimeout": self.retry_delay,
                    }
                    for number, message in enumerate(retried)
                ],
            )
        return len(last)

    def _dead_letter(self, message: MessageTypeDef, reason: str) -> None:
        assert self.dead_letter is not None
        self.client.send_message(
            QueueUrl=self.dead_letter.dead_letter_url,
            MessageBody=message["Body"],
            MessageAttributes=dead_letter_attributes(message, reason, self.url, _receives(message)),
        )
        logger.error("message %s dead-lettered: %s", message["MessageId"], reason)


def _receives(message: MessageTypeDef) -> int:
    return int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
