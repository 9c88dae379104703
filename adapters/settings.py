"""Every setting of the framework, declared once: its environment variable, type, default, use.

:class:`Settings` is read once, at the edge (the CLI's root command, each Lambda handler's first
call), and passed down explicitly: no other module of ours reads ``os.environ`` (a test
enforces it). The CloudFormation template's function environments are generated from the same
declarations (:meth:`Settings.variable`), so a name cannot drift between what is deployed and
what is read. AWS credentials, region and endpoints (``AWS_*``) are resolved by boto3 as usual;
they are listed here only so ``orders config`` can say what it sees (secrets masked).

A bad value fails at start-up with :class:`SettingsError`: one line naming the variable, the
value and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_NAME = "orders"


class Backend(StrEnum):
    """Where the service keeps its events."""

    LOCAL = "local"
    DYNAMODB = "dynamodb"
    MEMORY = "memory"  # in this process only (tests, examples)


class WriteMode(StrEnum):
    """How a save on DynamoDB reaches the notification log (see ``adapters.dynamodb``)."""

    TRANSACTIONAL = "transactional"
    INDEXED = "indexed"


class MetricsSinkChoice(StrEnum):
    """Where metrics go (see ``adapters.observability.telemetry``)."""

    EMF = "emf"
    CLOUDWATCH = "cloudwatch"
    OFF = "off"


class SettingsError(ValueError):
    """A setting has a value that is not allowed; the message is one line naming it."""


def setting(
    variable: str,
    default: Any,
    description: str,
    *,
    secret: bool = False,
    gt: float | None = None,
    ge: float | None = None,
) -> Any:
    """A field read from the environment variable ``variable``, above ``gt`` or from ``ge``."""
    return Field(
        default,
        validation_alias=variable,
        description=description,
        json_schema_extra={"variable": variable, "secret": secret},
        gt=gt,
        ge=ge,
    )


class Settings(BaseSettings):
    """The framework's settings (each field's description says what it does)."""

    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, case_sensitive=True
    )

    # -- where events are kept ------------------------------------------------------------
    backend: Backend = setting("ORDERS_BACKEND", Backend.LOCAL, "where events are stored")
    data_dir: Path | None = setting(
        "ORDERS_DATA_DIR",
        None,
        "the local backend's directory (default: $XDG_DATA_HOME/eventsourced-orders)",
    )
    xdg_data_home: Path | None = setting(
        "XDG_DATA_HOME", None, "base of the default data directory (default: ~/.local/share)"
    )
    events_table: str = setting("DYNAMODB_TABLE_NAME", "orders-events", "the event store table")
    write_mode: WriteMode = setting(
        "DYNAMODB_WRITE_MODE", WriteMode.TRANSACTIONAL, "how a save reaches the log"
    )
    create_tables: bool = setting(
        "DYNAMODB_CREATE_TABLE", False, "create missing tables (development only)"
    )
    poll_interval: float = setting(
        "DYNAMODB_POLL_INTERVAL", 1.0, "seconds between reads of a log subscription", gt=0
    )
    dynamodb_max_attempts: int = setting(
        "DYNAMODB_MAX_ATTEMPTS",
        5,
        "botocore's tries of one DynamoDB call (standard retry mode)",
        ge=1,
    )
    views_table: str | None = setting(
        "ORDERS_VIEWS_TABLE", None, "the read models' table (default: <events table>-views)"
    )
    events_namespace: str | None = setting(
        "INDEXER_EVENTS_NAMESPACE",
        None,
        "the application namespace the indexer indexes (default: OrderService's)",
    )

    # -- the order service -------------------------------------------------------------
    snapshot_interval: int = setting(
        "ORDERS_SNAPSHOT_INTERVAL", 0, "snapshot an order every N events (0: never)", ge=0
    )
    max_attempts: int = setting(
        "ORDERS_MAX_ATTEMPTS", 5, "tries of a command that loses a concurrent save", ge=1
    )
    aggregate_cache_size: int = setting(
        "AGGREGATE_CACHE_MAXSIZE", 1000, "orders kept in memory per process (0: no cache)", ge=0
    )

    # -- relay, bus and consumers ----------------------------------------------------------
    bus_name: str = setting(
        "ORDERS_BUS_NAME", "orders", "the EventBridge bus the relay publishes to"
    )
    relay_lease_seconds: float = setting(
        "ORDERS_RELAY_LEASE_SECONDS", 60.0, "the relay lease's term", gt=0
    )
    bus_max_bytes: int = setting(
        "ORDERS_BUS_MAX_BYTES",
        256 * 1024,
        "EventBridge's size limit per PutEvents call and entry (1 MB since 2026-01)",
        gt=0,
    )
    consumers: str = setting(
        "ORDERS_CONSUMERS", "views", "comma-separated consumers: views, notifications, saga"
    )
    notifications_topic_arn: str | None = setting(
        "ORDERS_NOTIFICATIONS_TOPIC_ARN", None, "the SNS topic of customer notifications"
    )
    idempotency_table: str = setting(
        "ORDERS_IDEMPOTENCY_TABLE", "orders-idempotency", "Powertools' idempotency table"
    )

    # -- AWS clients ------------------------------------------------------------------------
    connect_timeout: float = setting(
        "ORDERS_AWS_CONNECT_TIMEOUT", 2.0, "seconds to open a connection to an AWS endpoint", gt=0
    )
    read_timeout: float = setting(
        "ORDERS_AWS_READ_TIMEOUT",
        10.0,
        "seconds to wait for an AWS answer (the relay's is also under lease/4)",
        gt=0,
    )
    aws_max_attempts: int = setting(
        "ORDERS_AWS_MAX_ATTEMPTS",
        5,
        "botocore's tries of one call to EventBridge, SQS, SNS or CloudWatch",
        ge=1,
    )

    # -- observability and errors ---------------------------------------------------------
    metrics: MetricsSinkChoice | None = setting(
        "ORDERS_METRICS", None, "where metrics go: emf, cloudwatch, off (default: emf in Lambda)"
    )
    metrics_namespace: str = setting(
        "ORDERS_METRICS_NAMESPACE", "EventsourcedOrders", "the CloudWatch namespace of metrics"
    )
    powertools_service_name: str = setting(
        "POWERTOOLS_SERVICE_NAME", SERVICE_NAME, "the service name in log lines (Powertools')"
    )
    traceback: bool = setting(
        "ORDERS_TRACEBACK", False, "show the traceback of an unexpected CLI error"
    )
    lambda_function_name: str | None = setting(
        "AWS_LAMBDA_FUNCTION_NAME", None, "set by Lambda: the process runs in a function"
    )

    # -- read by boto3 (listed for `orders config`) ------------------------------------------
    aws_region: str | None = setting("AWS_REGION", None, "AWS region (boto3)")
    aws_default_region: str | None = setting("AWS_DEFAULT_REGION", None, "AWS region (boto3)")
    aws_endpoint_url: str | None = setting(
        "AWS_ENDPOINT_URL", None, "one endpoint for every AWS service (moto)"
    )
    aws_endpoint_url_dynamodb: str | None = setting(
        "AWS_ENDPOINT_URL_DYNAMODB", None, "DynamoDB's endpoint (DynamoDB Local)"
    )
    aws_endpoint_url_dynamodbstreams: str | None = setting(
        "AWS_ENDPOINT_URL_DYNAMODBSTREAMS", None, "DynamoDB Streams' endpoint (default: DynamoDB's)"
    )
    aws_access_key_id: SecretStr | None = setting(
        "AWS_ACCESS_KEY_ID", None, "AWS credentials (boto3)", secret=True
    )
    aws_secret_access_key: SecretStr | None = setting(
        "AWS_SECRET_ACCESS_KEY", None, "AWS credentials (boto3)", secret=True
    )
    aws_session_token: SecretStr | None = setting(
        "AWS_SESSION_TOKEN", None, "AWS credentials (boto3)", secret=True
    )

    _options: frozenset[str] = PrivateAttr(default=frozenset())

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable of ``field`` (``"bus_name"`` -> ``"ORDERS_BUS_NAME"``)."""
        alias = cls.model_fields[field].validation_alias
        assert isinstance(alias, str)
        return alias

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Every setting's environment variable, by field name."""
        return {name: cls.variable(name) for name in cls.model_fields}

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """The settings of this process: ``overrides`` (command-line options; ``None`` means
        not given), else the environment, else the defaults. :class:`SettingsError` on a bad
        value."""
        given = {name: value for name, value in overrides.items() if value is not None}
        try:
            settings = cls(**given)
        except ValidationError as error:
            raise SettingsError(describe(error, given)) from None
        settings._options = frozenset(given)
        return settings

    def sources(self) -> dict[str, str]:
        """Where each setting's value came from: ``option``, ``environment`` or ``default``."""
        return {
            name: (
                "option"
                if name in self._options
                else "environment"
                if name in self.model_fields_set
                else "default"
            )
            for name in type(self).model_fields
        }

    def shown(self) -> list[tuple[str, str, str, str]]:
        """``(variable, value, source, description)`` of every setting, secrets masked."""
        sources = self.sources()
        rows = []
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if is_secret(info):
                text = "" if value is None else "****"
            else:
                text = "" if value is None else str(value)
            rows.append((self.variable(name), text, sources[name], info.description or ""))
        return rows

    def aws_env(self) -> dict[str, str]:
        """The ``AWS_*`` settings that are set, by variable (secrets revealed: for clients)."""
        values = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name.startswith("aws_") and value is not None:
                text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
                values[self.variable(name)] = text
        return values

    @property
    def in_lambda(self) -> bool:
        return self.lambda_function_name is not None

    @property
    def local_data_dir(self) -> Path:
        """The local backend's directory: ``data_dir``, else under ``xdg_data_home``."""
        if self.data_dir is not None:
            return self.data_dir
        home = self.xdg_data_home or Path.home() / ".local" / "share"
        return home / "eventsourced-orders"

    @property
    def views_table_name(self) -> str:
        return self.views_table or f"{self.events_table}-views"

    @property
    def metrics_choice(self) -> MetricsSinkChoice:
        if self.metrics is not None:
            return self.metrics
        return MetricsSinkChoice.EMF if self.in_lambda else MetricsSinkChoice.OFF


def traceback_requested() -> bool:
    """Whether ``ORDERS_TRACEBACK`` asks for tracebacks (read even when other settings are
    bad, by the CLI's error boundary)."""
    return os.environ.get(Settings.variable("traceback"), "").lower() in {"1", "y", "yes", "true"}


def is_secret(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, Mapping) and bool(extra.get("secret"))


def describe(error: ValidationError, given: Mapping[str, Any]) -> str:
    """One line naming each bad setting, its value and what is allowed."""
    problems = []
    for detail in error.errors():
        location = str(detail["loc"][0]) if detail["loc"] else "?"
        field = location if location in Settings.model_fields else None
        name = Settings.variable(field) if field else location
        if field in given:
            name = f"--{field.replace('_', '-')}" if field else name
        value = detail.get("input")
        shown = "****" if field and is_secret(Settings.model_fields[field]) else repr(value)
        problems.append(f"{name}={shown}: {allowed(detail)}")
    return "bad setting " + "; ".join(problems)


def allowed(detail: Mapping[str, Any]) -> str:
    """What a setting allows, from pydantic's error ``detail``."""
    context = detail.get("ctx") or {}
    if detail["type"] == "enum":
        return f"must be one of {context.get('expected', '').replace(chr(39), '')}"
    if detail["type"] == "bool_parsing":
        return "must be a boolean (y/yes/true/1 or n/no/false/0)"
    message: str = detail["msg"]
    return message[0].lower() + message[1:]
