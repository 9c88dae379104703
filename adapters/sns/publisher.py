"""Amazon SNS: publishing customer notifications to a topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.contract import Envelope

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


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
