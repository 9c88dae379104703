"""The order service and its metrics, on the backend the settings choose."""

from __future__ import annotations

from adapters.bootstrap.clients import cloudwatch_client
from adapters.local.backend import local_env
from adapters.observability.observed import observe_commands
from adapters.observability.telemetry import MetricsSink, NullMetrics, get_logger, metrics_sink
from adapters.settings import Backend, Settings
from orders import OrderService


def persistence_env(settings: Settings) -> dict[str, str]:
    """The application environment (``eventsourcing``'s) of the chosen backend and service.

    Explicit values win over whatever the process environment holds (the library merges it)."""
    service = {
        "ORDERS_SNAPSHOT_INTERVAL": str(settings.snapshot_interval),
        "ORDERS_MAX_ATTEMPTS": str(settings.max_attempts),
        "AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size),
    }
    if settings.backend is Backend.LOCAL:
        return {**local_env(settings.local_data_dir), **service}
    if settings.backend is Backend.MEMORY:
        return {"PERSISTENCE_MODULE": "eventsourcing.popo", **service}
    return {
        "PERSISTENCE_MODULE": "adapters.dynamodb",
        "DYNAMODB_TABLE_NAME": settings.events_table,
        "DYNAMODB_WRITE_MODE": settings.write_mode.value,
        "DYNAMODB_CREATE_TABLE": "y" if settings.create_tables else "n",
        "DYNAMODB_POLL_INTERVAL": str(settings.poll_interval),
        "DYNAMODB_MAX_ATTEMPTS": str(settings.dynamodb_max_attempts),
        "DYNAMODB_CONNECT_TIMEOUT": str(settings.connect_timeout),
        "DYNAMODB_READ_TIMEOUT": str(settings.read_timeout),
        **settings.aws_env(),
        **service,
    }


def order_service(settings: Settings, metrics: MetricsSink | None = None) -> OrderService:
    """The service on the chosen backend; its commands counted in ``metrics`` if they are on."""
    service = OrderService(env=persistence_env(settings))
    if metrics is None or isinstance(metrics, NullMetrics):
        return service
    return observe_commands(service, metrics, get_logger())


def metrics_of(settings: Settings) -> MetricsSink:
    """The metrics sink the settings choose (a CloudWatch client only if that one is)."""
    return metrics_sink(
        settings.metrics_choice, settings.metrics_namespace, lambda: cloudwatch_client(settings)
    )
