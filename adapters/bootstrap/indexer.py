"""The indexer of the configured application's namespace (the indexed write mode)."""

from __future__ import annotations

from typing import Any

from adapters.bootstrap.service import persistence_env
from adapters.dynamodb import DynamoDBFactory
from adapters.dynamodb.indexer import Indexer
from adapters.settings import Backend, Settings, SettingsError
from orders import OrderService


def indexer_namespace(settings: Settings) -> str:
    """The ``events_namespace`` setting, else the one ``OrderService``'s factory derives."""
    return settings.events_namespace or f"{OrderService.name.lower()}_events"


def configured_indexer(settings: Settings, **options: Any) -> Indexer:
    """An indexer of the configured table and namespace; ``ValueError`` off DynamoDB."""
    if settings.backend is not Backend.DYNAMODB:
        msg = "the indexer works on the DynamoDB backend: use --backend dynamodb"
        raise SettingsError(msg)
    factory = DynamoDBFactory(persistence_env(settings))
    return Indexer(
        factory.datastore, factory.streams_client(), indexer_namespace(settings), **options
    )
