"""The library's infrastructure factory case for ``PERSISTENCE_MODULE=adapters.dynamodb``."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.tests.persistence import InfrastructureFactoryTestCase
from eventsourcing.utils import Environment

from adapters.dynamodb import (
    DynamoDBAggregateRecorder,
    DynamoDBApplicationRecorder,
    DynamoDBFactory,
    DynamoDBProcessRecorder,
    DynamoDBTrackingRecorder,
)
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = pytest.mark.dynamodb


class CustomTrackingRecorder(DynamoDBTrackingRecorder):
    pass


class TestDynamoDBFactory(DynamoDBLocalTestCase, InfrastructureFactoryTestCase[DynamoDBFactory]):
    def set_up_table(self) -> None:
        super().set_up_table()
        self.env = Environment("TestCase", self.dynamodb_env())

    def expected_factory_class(self) -> type[DynamoDBFactory]:
        return DynamoDBFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return DynamoDBAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return DynamoDBApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return DynamoDBTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return CustomTrackingRecorder

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return DynamoDBProcessRecorder
