"""Each parking-lot adapter keeps the parking contract (tests/support/parking_contract.py):
the relay's in the event store's database, a runner's in its view store."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from eventsourcing.sqlite import SQLiteDatastore

from adapters.dynamodb import DynamoDBDatastore
from adapters.dynamodb.parking import DynamoDBParkingLot
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.local.parking import SQLiteParkingLot
from adapters.local.views import SQLiteViewStore
from projections.memory import InMemoryViewStore
from projections.parking import ParkingLot, ViewParking
from tests.support import parking_contract
from tests.support.dynamodb_local import DynamoDBLocalTestCase


class TestSQLiteParkingLot(parking_contract.ParkingContract):
    def setUp(self) -> None:
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.path = Path(directory.name) / "events.sqlite3"

    def create_lot(self, worker: str = parking_contract.WORKER) -> ParkingLot:
        return SQLiteParkingLot(SQLiteDatastore(str(self.path), lock_timeout=10), worker)


class TestViewParkingInMemory(parking_contract.ParkingContract):
    def setUp(self) -> None:
        self.store = InMemoryViewStore()

    def create_lot(self, worker: str = parking_contract.WORKER) -> ParkingLot:
        return ViewParking(self.store, worker)


class TestViewParkingOnSQLite(parking_contract.ParkingContract):
    def setUp(self) -> None:
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.path = Path(directory.name) / "views.sqlite3"

    def create_lot(self, worker: str = parking_contract.WORKER) -> ParkingLot:
        return ViewParking(SQLiteViewStore(self.path), worker)


@pytest.mark.dynamodb
class TestDynamoDBParkingLot(parking_contract.ParkingContract, DynamoDBLocalTestCase):
    def create_lot(self, worker: str = parking_contract.WORKER) -> ParkingLot:
        return DynamoDBParkingLot(self.datastore, worker, "orderservice_parking")


@pytest.mark.dynamodb
class TestViewParkingOnDynamoDB(parking_contract.ParkingContract, DynamoDBLocalTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.views_table = f"{self.table_name}-views"
        store = DynamoDBViewStore(DynamoDBDatastore(self.client, self.views_table))
        store.create_table_if_missing()
        self.addCleanup(self.server.delete_table, self.views_table)

    def create_lot(self, worker: str = parking_contract.WORKER) -> ParkingLot:
        store = DynamoDBViewStore(DynamoDBDatastore(self.server.client(), self.views_table))
        return ViewParking(store, worker)
