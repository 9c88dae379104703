"""Builds the consumers' record handler from configuration: one place for the CLI and Lambda.

A consumer is any of ``views`` (the downstream projections), ``notifications`` (SNS, once per
event) and ``saga`` (payment events -> order commands); one queue may feed several, each
routed the detail-types it handles. Settings (``record_handler_from_env`` reads them from the
process environment, the CLI from its options):

- ``ORDERS_CONSUMERS``: comma-separated consumers (default ``views``);
- ``ORDERS_NOTIFICATIONS_TOPIC_ARN``: the SNS topic of the notifications;
- ``ORDERS_IDEMPOTENCY_TABLE``: the DynamoDB table of Powertools' idempotency records
  (default ``orders-idempotency``);
- the event store's own settings (``PERSISTENCE_MODULE``, ``DYNAMODB_TABLE_NAME``, ...) for the
  saga's commands and the views' gap reads, and the AWS variables for every client.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum

import boto3

from adapters.bootstrap.projections import dynamodb_view_store
from adapters.consumers.dispatcher import (
    ORDER_DETAIL_TYPES,
    PAYMENT_DETAIL_TYPES,
    Dispatcher,
    Handler,
)
from adapters.consumers.notifications import Notifier
from adapters.consumers.saga import PaymentSaga
from adapters.sns.idempotency import dynamodb_persistence, once_per_event
from adapters.sns.publisher import SnsPublisher, publish_client_config
from orders import OrderService
from projections.downstream import DownstreamProjection, store_reader
from projections.ports import ViewStore

CONSUMERS_VARIABLE = "ORDERS_CONSUMERS"
TOPIC_VARIABLE = "ORDERS_NOTIFICATIONS_TOPIC_ARN"
IDEMPOTENCY_TABLE_VARIABLE = "ORDERS_IDEMPOTENCY_TABLE"
DEFAULT_IDEMPOTENCY_TABLE = "orders-idempotency"


class Consumer(StrEnum):
    """What a consumer does with the envelopes routed to it."""

    VIEWS = "views"
    NOTIFICATIONS = "notifications"
    SAGA = "saga"


class ConsumerConfigError(ValueError):
    """The consumers asked for cannot be built from the settings given; the message says why."""


def dispatcher(
    consumers: Iterable[Consumer],
    *,
    service: Callable[[], OrderService],
    view_store: Callable[[], ViewStore],
    topic_arn: str | None = None,
    idempotency_table: str = DEFAULT_IDEMPOTENCY_TABLE,
) -> Dispatcher:
    """The record handler of ``consumers``; backends are built only for those asked for."""
    routes: list[tuple[Iterable[str], Handler]] = []
    for consumer in consumers:
        if consumer is Consumer.VIEWS:
            views = DownstreamProjection(view_store(), missing_events=store_reader(service()))
            routes.append((ORDER_DETAIL_TYPES, views))
        elif consumer is Consumer.NOTIFICATIONS:
            if not topic_arn:
                msg = f"notifications need an SNS topic: set {TOPIC_VARIABLE} or --topic-arn"
                raise ConsumerConfigError(msg)
            notify = once_per_event(
                Notifier(
                    SnsPublisher(boto3.client("sns", config=publish_client_config()), topic_arn)
                ),
                dynamodb_persistence(boto3.client("dynamodb"), idempotency_table),
                name="notifications",
            )
            routes.append((ORDER_DETAIL_TYPES, notify))
        else:
            routes.append((PAYMENT_DETAIL_TYPES, PaymentSaga(service())))
    return Dispatcher(routes)


def parse_consumers(text: str) -> list[Consumer]:
    """``"views,saga"`` as consumers; :class:`ConsumerConfigError` naming an unknown one."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    known = {consumer.value for consumer in Consumer}
    if unknown := [name for name in names if name not in known]:
        msg = f"unknown consumer(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        raise ConsumerConfigError(msg)
    return [Consumer(name) for name in names]


def record_handler_from_env(
    env: Mapping[str, str] = os.environ,
    view_store: Callable[[], ViewStore] | None = None,
) -> Dispatcher:
    """The record handler the environment configures (see the module docstring); the views
    go to the DynamoDB view store of the event store's table unless ``view_store`` is given."""
    service = OrderService(env=dict(env))

    def views_table() -> ViewStore:
        return dynamodb_view_store(service, env.get("DYNAMODB_TABLE_NAME", "orders-events"))

    return dispatcher(
        parse_consumers(env.get(CONSUMERS_VARIABLE, Consumer.VIEWS.value)),
        service=lambda: service,
        view_store=view_store or views_table,
        topic_arn=env.get(TOPIC_VARIABLE),
        idempotency_table=env.get(IDEMPOTENCY_TABLE_VARIABLE, DEFAULT_IDEMPOTENCY_TABLE),
    )
