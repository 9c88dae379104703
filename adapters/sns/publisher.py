"""Amazon SNS: publishing customer notifications to a topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.deploy.resources import MissingResourceError, missing
from schemas.contract import Envelope

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


def require_topic(client: SNSClient, topic_arn: str) -> None:
    """:class:`MissingResourceError` naming ``topic_arn`` unless the topic exists."""
    try:
        client.get_topic_attributes(TopicArn=topic_arn)
    except client.exceptions.NotFoundException:
        raise MissingResourceError(missing(f"SNS topic {topic_arn!r}")) from None


class SnsPublisher:
    """Publishes a notification text to ``topic_arn``, with the event id and order id as
    message attributes (so subscribers can filter and deduplicate)."""

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self.client = client
        self.topic_arn = topic_arn

    def __call__(self, text: str, envelope: Envelope) -> None:
        self.client.publish(
            TopicArn=self.topic_arn,
            Message=text,
            MessageAttributes={
                "eventId": {"DataType": "String", "StringValue": str(envelope.id)},
                "orderId": {"DataType": "String", "StringValue": str(envelope.detail.order_id)},
                "status": {"DataType": "String", "StringValue": envelope.detail.status},
            },
        )
