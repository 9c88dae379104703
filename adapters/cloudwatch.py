"""Amazon CloudWatch: the relay's figures as metrics (alarm on ``UnpublishableEvents`` > 0)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

log = logging.getLogger(__name__)

NAMESPACE = "EventsourcedOrders"


class CloudWatchMetrics:
    """Puts each report as one ``PutMetricData`` call in ``namespace``, dimensioned by
    ``dimensions`` (for example ``{"Relay": "eventbridge-relay"}``).

    A failure to report is logged, never raised: figures must not stop the work they count.
    """

    def __init__(
        self,
        client: CloudWatchClient,
        dimensions: Mapping[str, str],
        namespace: str = NAMESPACE,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.dimensions = [{"Name": name, "Value": value} for name, value in dimensions.items()]

    def put(self, values: Mapping[str, float]) -> None:
        data: Any = [
            {
                "MetricName": name,
                "Value": float(value),
                "Unit": "Count",
                "Dimensions": self.dimensions,
            }
            for name, value in values.items()
        ]
        try:
            self.client.put_metric_data(Namespace=self.namespace, MetricData=data)
        except (BotoCoreError, ClientError) as error:
            log.warning("metrics %s not reported to CloudWatch: %s", dict(values), error)
