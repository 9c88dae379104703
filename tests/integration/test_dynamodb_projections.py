"""The library's projection cases that apply to a persistence module, on DynamoDB Local.

``TaggedDecisionCountersProjectionTestCase`` is not here: it runs a ``DCBApplication``, which
needs a DCB recorder (``DCBInfrastructureFactory``), a different port this module does not
provide.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
from eventsourcing.tests import projection as library

from adapters.dynamodb import DynamoDBFactory
from tests.integration.event_counters import DynamoDBEventCounters
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = pytest.mark.dynamodb


class TestEventCountersView(DynamoDBLocalTestCase, library.EventCountersViewTestCase):
    def construct_event_counters_view(self) -> library.EventCountersView:
        factory = DynamoDBFactory(self.dynamodb_env(), client=self.client)
        view = factory.tracking_recorder(DynamoDBEventCounters)
        assert isinstance(view, DynamoDBEventCounters)
        return view


class TestAggregateEventCountersProjection(
    DynamoDBLocalTestCase, library.AggregateEventCountersProjectionTestCase
):
    view_class = DynamoDBEventCounters
    env: ClassVar[dict[str, str]] = {}

    def set_up_table(self) -> None:
        super().set_up_table()
        type(self).env = self.dynamodb_env()


class TestEventSourcedProjection(DynamoDBLocalTestCase, library.EventSourcedProjectionTestCase):
    env: ClassVar[dict[str, str]] = {}

    def set_up_table(self) -> None:
        super().set_up_table()
        type(self).env = self.dynamodb_env()
