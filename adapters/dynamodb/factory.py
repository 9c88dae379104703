"""The infrastructure factory: builds the datastore and recorders from the environment.

See the package docstring (:mod:`adapters.dynamodb`) for the settings it reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool

from adapters.dynamodb.datastore import DynamoDBDatastore
from adapters.dynamodb.indexed import (
    DynamoDBIndexedApplicationRecorder,
    DynamoDBIndexedProcessRecorder,
)
from adapters.dynamodb.recorders import DynamoDBAggregateRecorder, DynamoDBTrackingRecorder
from adapters.dynamodb.transactional import DynamoDBApplicationRecorder, DynamoDBProcessRecorder

WRITE_MODES = ("transactional", "indexed")

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient


class DynamoDBFactory(InfrastructureFactory[DynamoDBTrackingRecorder]):
    """Recorders on one DynamoDB table, namespaced by application name and purpose.

    ``client`` injects a boto3 DynamoDB client (then the AWS settings of the environment are
    not read, and :meth:`close` leaves the client open); without it the factory builds one.
    """

    DYNAMODB_TABLE_NAME = "DYNAMODB_TABLE_NAME"
    DYNAMODB_CREATE_TABLE = "DYNAMODB_CREATE_TABLE"
    DYNAMODB_POLL_INTERVAL = "DYNAMODB_POLL_INTERVAL"
    DYNAMODB_RETRY_MODE = "DYNAMODB_RETRY_MODE"
    DYNAMODB_MAX_ATTEMPTS = "DYNAMODB_MAX_ATTEMPTS"
    DYNAMODB_WRITE_MODE = "DYNAMODB_WRITE_MODE"
    DYNAMODB_CONNECT_TIMEOUT = "DYNAMODB_CONNECT_TIMEOUT"
    DYNAMODB_READ_TIMEOUT = "DYNAMODB_READ_TIMEOUT"

    def __init__(
        self, env: Environment | EnvType | None, *, client: DynamoDBClient | None = None
    ) -> None:
        super().__init__(env)
        table_name = self.env.get(self.DYNAMODB_TABLE_NAME)
        if not table_name:
            keys = ", ".join(self.env.create_keys(self.DYNAMODB_TABLE_NAME))
            msg = f"DynamoDB table name not found in environment with keys: {keys}"
            raise OSError(msg)
        self.write_mode = self.env.get(self.DYNAMODB_WRITE_MODE, "transactional").lower()
        if self.write_mode not in WRITE_MODES:
            msg = (
                f"{self.DYNAMODB_WRITE_MODE} must be one of {', '.join(WRITE_MODES)}, "
                f"not {self.write_mode!r}"
            )
            raise ValueError(msg)
        self._owns_client = client is None
        self.datastore = DynamoDBDatastore(
            client or self._create_client(),
            table_name,
            poll_interval=float(self.env.get(self.DYNAMODB_POLL_INTERVAL, "1.0")),
        )
        if strtobool(self.env.get(self.DYNAMODB_CREATE_TABLE, "no")):
            self.datastore.create_table_if_missing()

    def _create_client(self) -> DynamoDBClient:
        """A client configured by the standard AWS variables found in the environment;
        those absent are left to boto3, which reads ``os.environ``, profiles and roles."""
        endpoint = self.env.get("AWS_ENDPOINT_URL_DYNAMODB") or self.env.get("AWS_ENDPOINT_URL")
        client: DynamoDBClient = self._session().client(
            "dynamodb", endpoint_url=endpoint, config=self._config()
        )
        return client

    def streams_client(self) -> DynamoDBStreamsClient:
        """A DynamoDB Streams client configured as the DynamoDB one (the indexer's);
        ``AWS_ENDPOINT_URL_DYNAMODBSTREAMS`` or else the DynamoDB endpoint (DynamoDB Local
        serves both)."""
        env = self.env
        endpoint = (
            env.get("AWS_ENDPOINT_URL_DYNAMODBSTREAMS")
            or env.get("AWS_ENDPOINT_URL_DYNAMODB")
            or env.get("AWS_ENDPOINT_URL")
        )
        client: DynamoDBStreamsClient = self._session().client(
            "dynamodbstreams", endpoint_url=endpoint, config=self._config()
        )
        return client

    def _session(self) -> boto3.session.Session:
        env = self.env
        return boto3.session.Session(
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=env.get("AWS_SESSION_TOKEN"),
            region_name=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION"),
        )

    def _config(self) -> Config:
        retries = {
            "mode": self.env.get(self.DYNAMODB_RETRY_MODE, "standard"),
            "total_max_attempts": int(self.env.get(self.DYNAMODB_MAX_ATTEMPTS, "5")),
        }
        return Config(
            retries=retries,  # type: ignore[arg-type]
            connect_timeout=float(self.env.get(self.DYNAMODB_CONNECT_TIMEOUT, "2")),
            read_timeout=float(self.env.get(self.DYNAMODB_READ_TIMEOUT, "10")),
        )

    @property
    def events_namespace(self) -> str:
        """Where the application recorder keeps streams and log (the indexer's namespace)."""
        return f"{self._prefix('stored')}_events"

    def _prefix(self, default: str) -> str:
        return self.env.name.lower() or default

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return DynamoDBAggregateRecorder(
            self.datastore, events_namespace=f"{self._prefix('stored')}_{purpose}"
        )

    def application_recorder(self) -> ApplicationRecorder:
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        default = (
            DynamoDBIndexedApplicationRecorder
            if self.write_mode == "indexed"
            else DynamoDBApplicationRecorder
        )
        cls: type[DynamoDBApplicationRecorder] = resolve_topic(topic) if topic else default
        assert issubclass(cls, DynamoDBApplicationRecorder), cls
        return cls(self.datastore, events_namespace=self.events_namespace)

    def tracking_recorder(
        self, tracking_recorder_class: type[DynamoDBTrackingRecorder] | None = None
    ) -> DynamoDBTrackingRecorder:
        cls = tracking_recorder_class
        if cls is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            cls = resolve_topic(topic) if topic else DynamoDBTrackingRecorder
        assert cls is not None and issubclass(cls, DynamoDBTrackingRecorder), cls
        return cls(self.datastore, tracking_namespace=f"{self._prefix('notification')}_tracking")

    def process_recorder(self) -> ProcessRecorder:
        topic = self.env.get(self.PROCESS_RECORDER_TOPIC)
        default = (
            DynamoDBIndexedProcessRecorder
            if self.write_mode == "indexed"
            else DynamoDBProcessRecorder
        )
        cls: type[DynamoDBProcessRecorder] = resolve_topic(topic) if topic else default
        assert issubclass(cls, DynamoDBProcessRecorder), cls
        return cls(
            self.datastore,
            events_namespace=self.events_namespace,
            tracking_namespace=f"{self._prefix('notification')}_tracking",
        )

    def close(self) -> None:
        if self._owns_client:
            self.datastore.client.close()
