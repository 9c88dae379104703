"""The library's own recorder contract cases, as shipped, on DynamoDB Local."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)

from adapters.dynamodb import (
    DynamoDBAggregateRecorder,
    DynamoDBApplicationRecorder,
    DynamoDBProcessRecorder,
    DynamoDBTrackingRecorder,
)
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = pytest.mark.dynamodb


class TestAggregateRecorder(DynamoDBLocalTestCase, AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return DynamoDBAggregateRecorder(self.datastore, events_namespace="test_events")


class TestApplicationRecorder(
    DynamoDBLocalTestCase, ApplicationRecorderTestCase[DynamoDBApplicationRecorder]
):
    def create_recorder(self) -> DynamoDBApplicationRecorder:
        return DynamoDBApplicationRecorder(self.datastore, events_namespace="test_events")

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestNonInterleavingNotificationIDs(
    DynamoDBLocalTestCase, NonInterleavingNotificationIDsBaseCase
):
    def create_recorder(self) -> ApplicationRecorder:
        return DynamoDBApplicationRecorder(self.datastore, events_namespace="test_events")


class TestTrackingRecorder(DynamoDBLocalTestCase, TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return DynamoDBTrackingRecorder(self.datastore, tracking_namespace="test_tracking")


class TestProcessRecorder(DynamoDBLocalTestCase, ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return DynamoDBProcessRecorder(
            self.datastore, events_namespace="test_events", tracking_namespace="test_tracking"
        )
