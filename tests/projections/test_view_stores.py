"""The view-store contract case, passed by every view store."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import pytest

from adapters.dynamodb import DynamoDBDatastore
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.local.views import SQLiteViewStore
from projections.memory import InMemoryViewStore
from projections.ports import ViewStore
from tests.projections import view_store_case
from tests.support.dynamodb_local import dynamodb_local


class TestInMemoryViewStore(view_store_case.ViewStoreTestCase):
    def create_store(self) -> ViewStore:
        return InMemoryViewStore()


class TestSQLiteViewStore(view_store_case.ViewStoreTestCase):
    def create_store(self) -> ViewStore:
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.path = Path(directory.name) / "views.sqlite3"
        return self.open(self.path)

    def open(self, path: Path) -> SQLiteViewStore:
        store = SQLiteViewStore(path)
        self.addCleanup(store.close)
        return store

    def another_store(self) -> ViewStore:
        return self.open(self.path)


@pytest.mark.dynamodb
class TestDynamoDBViewStore(view_store_case.ViewStoreTestCase):
    def create_store(self) -> ViewStore:
        server = dynamodb_local()
        self.table_name = new_view_table(self)
        return DynamoDBViewStore(DynamoDBDatastore(server.client(), self.table_name))

    def another_store(self) -> ViewStore:
        client = dynamodb_local().client()
        return DynamoDBViewStore(DynamoDBDatastore(client, self.table_name))


def new_view_table(test: view_store_case.ViewStoreTestCase) -> str:
    """A fresh view table on the session's DynamoDB Local, deleted after ``test``."""
    server = dynamodb_local()
    table_name = f"views-{uuid.uuid4().hex}"
    DynamoDBViewStore(DynamoDBDatastore(server.client(), table_name)).create_table_if_missing()
    test.addCleanup(server.delete_table, table_name)
    return table_name
