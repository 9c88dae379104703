"""Builds the consumers' record handler from configuration: one place for the CLI and Lambda.

A consumer is any of ``views`` (the downstream projections), ``notifications`` (SNS, once per
event) and ``saga`` (payment events -> order commands); one queue may feed several, each
routed the detail-types it handles. :func:`record_handler` builds them from the settings
(``consumers``, ``notifications_topic_arn``, ``idempotency_table``, and the backend's for the
saga's commands and the views' gap reads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum

from adapters.bootstrap.clients import dynamodb_client, sns_client
from adapters.bootstrap.projections import view_store as configured_view_store
from adapters.bootstrap.service import order_service
from adapters.consumers.dispatcher import (
    ORDER_DETAIL_TYPES,
    PAYMENT_DETAIL_TYPES,
    Dispatcher,
    Handler,
)
from adapters.consumers.notifications import Notifier
from adapters.consumers.saga import PaymentSaga
from adapters.local.backend import EVENTS_FILE_NAME
from adapters.local.bus import LocalDeadLetters, RecordHandler
from adapters.settings import Settings
from adapters.sns.idempotency import dynamodb_persistence, once_per_event
from adapters.sns.publisher import SnsPublisher
from orders import OrderService
from projections.downstream import DownstreamProjection, store_reader
from projections.ports import ViewStore


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
    settings: Settings,
) -> Dispatcher:
    """The record handler of ``consumers``; backends are built only for those asked for."""
    routes: list[tuple[Iterable[str], Handler]] = []
    for consumer in consumers:
        if consumer is Consumer.VIEWS:
            views = DownstreamProjection(view_store(), store_events=store_reader(service()))
            routes.append((ORDER_DETAIL_TYPES, views))
        elif consumer is Consumer.NOTIFICATIONS:
            topic_arn = settings.notifications_topic_arn
            if not topic_arn:
                variable = Settings.variable("notifications_topic_arn")
                msg = f"notifications need an SNS topic: set {variable} or --topic-arn"
                raise ConsumerConfigError(msg)
            notify = once_per_event(
                Notifier(SnsPublisher(sns_client(settings), topic_arn)),
                dynamodb_persistence(dynamodb_client(settings), settings.idempotency_table),
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


def record_handler(
    settings: Settings, view_store: Callable[[], ViewStore] | None = None
) -> Dispatcher:
    """The record handler of the configured consumers; the views go to the configured view
    store unless ``view_store`` is given. Backends are built only if a consumer needs them."""
    built: list[OrderService] = []

    def service() -> OrderService:
        if not built:
            built.append(order_service(settings))
        return built[0]

    return dispatcher(
        parse_consumers(settings.consumers),
        service=service,
        view_store=view_store or (lambda: configured_view_store(settings, service())),
        settings=settings,
    )


def local_handlers(service: OrderService, store: ViewStore) -> Mapping[str, RecordHandler]:
    """The record handlers the in-process bus delivers to, by route: the downstream views (in
    ``store``, checked against and gaps read from ``service``'s store), behind the same
    dispatcher as on SQS. Notifications need SNS and the saga takes payment events, which the
    order log does not hold: they run on the SQS path only."""
    views = DownstreamProjection(store, store_events=store_reader(service))
    return {"views": Dispatcher([(ORDER_DETAIL_TYPES, views)])}


def local_dead_letters(settings: Settings) -> LocalDeadLetters:
    """The in-process bus's dead letters, in the local backend's database."""
    data_dir = settings.local_data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    return LocalDeadLetters(data_dir / EVENTS_FILE_NAME)
