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
from adapters.dynamodb.recorders import (
    DynamoDBAggregateRecorder,
    DynamoDBApplicationRecorder,
    DynamoDBProcessRecorder,
    DynamoDBTrackingRecorder,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


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

    def __init__(
        self, env: Environment | EnvType | None, *, client: DynamoDBClient | None = None
    ) -> None:
        super().__init__(env)
        table_name = self.env.get(self.DYNAMODB_TABLE_NAME)
        if not table_name:
            keys = ", ".join(self.env.create_keys(self.DYNAMODB_TABLE_NAME))
            msg = f"DynamoDB table name not found in environment with keys: {keys}"
            raise OSError(msg)
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
        env = self.env
        session = boto3.session.Session(
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=env.get("AWS_SESSION_TOKEN"),
            region_name=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION"),
        )
        retries = {
            "mode": env.get(self.DYNAMODB_RETRY_MODE, "standard"),
            "total_max_attempts": int(env.get(self.DYNAMODB_MAX_ATTEMPTS, "5")),
        }
        return session.client(
            "dynamodb",
            endpoint_url=env.get("AWS_ENDPOINT_URL_DYNAMODB") or env.get("AWS_ENDPOINT_URL"),
            config=Config(retries=retries),  # type: ignore[arg-type]
        )

    def _prefix(self, default: str) -> str:
        return self.env.name.lower() or default

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return DynamoDBAggregateRecorder(
            self.datastore, events_namespace=f"{self._prefix('stored')}_{purpose}"
        )

    def application_recorder(self) -> ApplicationRecorder:
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        cls: type[DynamoDBApplicationRecorder] = (
            resolve_topic(topic) if topic else DynamoDBApplicationRecorder
        )
        assert issubclass(cls, DynamoDBApplicationRecorder), cls
        return cls(self.datastore, events_namespace=f"{self._prefix('stored')}_events")

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
        cls: type[DynamoDBProcessRecorder] = (
            resolve_topic(topic) if topic else DynamoDBProcessRecorder
        )
        assert issubclass(cls, DynamoDBProcessRecorder), cls
        return cls(
            self.datastore,
            events_namespace=f"{self._prefix('stored')}_events",
            tracking_namespace=f"{self._prefix('notification')}_tracking",
        )

    def close(self) -> None:
        if self._owns_client:
            self.datastore.client.close()
