"""The library's ``EventCountersView`` on DynamoDB: counters updated with their tracking.

Each increment is one transaction: the counter's ``ADD`` and the tracking update, so a
notification is counted once or not at all (the tracking condition rejects a repeat).
"""

from __future__ import annotations

from eventsourcing.persistence import Tracking
from eventsourcing.tests.projection import EventCountersView

from adapters.dynamodb import DynamoDBTrackingRecorder
from adapters.dynamodb.datastore import Item
from adapters.dynamodb.items import key, number

COUNT = "c"


class DynamoDBEventCounters(DynamoDBTrackingRecorder, EventCountersView):
    def get_created_event_counter(self) -> int:
        return self._count("created")

    def get_subsequent_event_counter(self) -> int:
        return self._count("subsequent")

    def incr_created_event_counter(self, tracking: Tracking) -> None:
        self.record(tracking, self._increment("created"))

    def incr_subsequent_event_counter(self, tracking: Tracking) -> None:
        self.record(tracking, self._increment("subsequent"))

    def _key(self, counter: str) -> Item:
        return key(f"{self.tracking_namespace}#counter#{counter}")

    def _count(self, counter: str) -> int:
        item = self.datastore.get_item(self._key(counter))
        return int(item[COUNT]["N"]) if item else 0

    def _increment(self, counter: str) -> Item:
        return {
            "Update": {
                "Key": self._key(counter),
                "UpdateExpression": "ADD #c :one",
                "ExpressionAttributeNames": {"#c": COUNT},
                "ExpressionAttributeValues": {":one": number(1)},
            }
        }
