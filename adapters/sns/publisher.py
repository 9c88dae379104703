"""Amazon SNS: publishing customer notifications to a topic, without blind re-sends.

Every notification carries the event id (message attribute ``eventId``), the order id and the
status, so a subscriber can filter and deduplicate. What a lost answer (the request reached SNS,
the response did not) can do depends on the topic:

- **FIFO topic** (ARN ending ``.fifo``): each publish carries ``MessageDeduplicationId`` = the
  event id (and ``MessageGroupId`` = the order id, keeping an order's notifications in order), so
  SNS drops any re-send of it within its 5-minute deduplication window: a lost answer is
  retried, by botocore or by a redelivery, and the customer gets **one** notification.
- **standard topic**: SNS has no conditional publish, so a lost answer is an outcome unknown,
  and any re-send of it is a duplicate. The publisher refuses a client whose botocore retries
  would re-send (:func:`publish_client_config` builds one that does not) and records the
  outcome itself: by default (``resend_unknown=False``) an unknown outcome counts as sent (a
  warning names the event), so a lost answer gives **one** notification; the price is that a
  request that died *before* reaching SNS in the same way (a read timeout, a connection closed)
  is not sent at all: at most once for those. With ``resend_unknown=True`` it raises
  :class:`PublishOutcomeUnknown` instead, the queue redelivers, and each lost answer gives
  **one extra** notification (at least once), with the same ``eventId`` to deduplicate on.
  Answers that say nothing was published (throttling, a connection refused) are retried here,
  with jittered pauses, under either choice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from adapters.deploy.resources import MissingResourceError, missing
from orders.backoff import Backoff
from schemas.contract import Envelope

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

logger = logging.getLogger(__name__)

THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "ThrottledException"})
"""Error codes with which SNS says it refused the request: nothing was published."""


class PublishOutcomeUnknown(RuntimeError):  # noqa: N818 - it is not an error of the caller's
    """A ``Publish`` to a standard topic whose answer was lost (``resend_unknown``): it may or
    may not have been published. Not retried here; the message's redelivery publishes it."""


def publish_client_config(connect_timeout: float = 2.0, read_timeout: float = 5.0) -> Config:
    """The botocore configuration of the SNS client: no automatic retries (a re-sent
    ``Publish`` to a standard topic is a duplicate notification), short timeouts."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def retries_automatically(client: SNSClient) -> bool:
    """Whether botocore re-sends a failed call of ``client`` by itself."""
    retries: dict[str, object] = getattr(client.meta.config, "retries", None) or {}
    if "total_max_attempts" in retries:
        return int(str(retries["total_max_attempts"])) > 1
    return int(str(retries.get("max_attempts", 1))) > 0


def require_topic(client: SNSClient, topic_arn: str) -> None:
    """:class:`MissingResourceError` naming ``topic_arn`` unless the topic exists."""
    try:
        client.get_topic_attributes(TopicArn=topic_arn)
    except client.exceptions.NotFoundException:
        raise MissingResourceError(missing(f"SNS topic {topic_arn!r}")) from None


class SnsPublisher:
    """Publishes a notification text to ``topic_arn`` (see the module docstring).

    ``attempts`` bounds the tries of a publish SNS refused without publishing (throttling, no
    connection), paused by ``backoff``; a FIFO topic's lost answers are retried the same way.
    ``resend_unknown`` chooses, for a standard topic, what an unknown outcome is (see above).
    """

    def __init__(
        self,
        client: SNSClient,
        topic_arn: str,
        *,
        attempts: int = 4,
        backoff: Backoff | None = None,
        resend_unknown: bool = False,
    ) -> None:
        self.fifo = topic_arn.endswith(".fifo")
        if not self.fifo and retries_automatically(client):
            msg = (
                f"the SNS client for {topic_arn} retries by itself, which re-sends a Publish "
                "whose answer was lost: build it with publish_client_config()"
            )
            raise ValueError(msg)
        self.client = client
        self.topic_arn = topic_arn
        self.attempts = attempts
        self.backoff = backoff or Backoff()
        self.resend_unknown = resend_unknown

    def __call__(self, text: str, envelope: Envelope) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                self._publish(text, envelope)
            except (ConnectionClosedError, ReadTimeoutError) as error:
                if not self.fifo:
                    self._unknown(envelope, error)
                    return
                if attempt >= self.attempts:
                    raise
            except (EndpointConnectionError, ConnectTimeoutError):
                if attempt >= self.attempts:
                    raise
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                refused = code in THROTTLING_CODES
                if not refused and status >= 500 and not self.fifo:  # published? unknown
                    self._unknown(envelope, error)
                    return
                if not (refused or (status >= 500 and self.fifo)) or attempt >= self.attempts:
                    raise
            else:
                return
            self.backoff.pause(attempt)

    def _unknown(self, envelope: Envelope, error: Exception) -> None:
        """Settle a standard topic's unknown outcome: raise to be redelivered, or count it sent."""
        what = f"publish of event {envelope.id} to {self.topic_arn}: {error}"
        if self.resend_unknown:
            raise PublishOutcomeUnknown(what) from error
        logger.warning("%s; outcome unknown, counted as sent (not re-sent)", what)

    def _publish(self, text: str, envelope: Envelope) -> None:
        order_id = str(envelope.detail.order_id)
        fifo = {"MessageGroupId": order_id, "MessageDeduplicationId": str(envelope.id)}
        self.client.publish(
            TopicArn=self.topic_arn,
            Message=text,
            MessageAttributes={
                "eventId": {"DataType": "String", "StringValue": str(envelope.id)},
                "orderId": {"DataType": "String", "StringValue": order_id},
                "status": {"DataType": "String", "StringValue": envelope.detail.status},
            },
            **(fifo if self.fifo else {}),
        )
