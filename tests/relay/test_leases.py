"""Each lease adapter keeps the lease contract (tests/support/lease_contract.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from eventsourcing.sqlite import SQLiteDatastore

from adapters.dynamodb.lease import DynamoDBLease
from adapters.local.backend import SQLiteLease
from adapters.relay.ports import Lease
from tests.support import lease_contract
from tests.support.dynamodb_local import DynamoDBLocalTestCase


class TestSQLiteLease(lease_contract.LeaseContract):
    def setUp(self) -> None:
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.path = Path(directory.name) / "events.sqlite3"

    def create_lease(self) -> Lease:
        return SQLiteLease(SQLiteDatastore(str(self.path), lock_timeout=10), "relay")


@pytest.mark.dynamodb
class TestDynamoDBLease(lease_contract.LeaseContract, DynamoDBLocalTestCase):
    def create_lease(self) -> Lease:
        return DynamoDBLease(self.datastore, "relay")
