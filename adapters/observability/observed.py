"""Metrics and logs of ``OrderService`` commands and of consumers, wired from outside them.

:func:`observe_commands` wraps one service's command methods and its ``save`` (the domain
stays free of any of this). Per command it counts ``Commands`` by outcome, ``Conflicts`` (each
save the store refused because the order moved), ``Retries`` (conflicts after which the
command decided again) and ``SaveLatency``; per saved event it logs one JSON line with the
order id, event id and correlation id (see :mod:`adapters.observability.telemetry`).

:func:`observe_consumer` wraps a consumer's record handler (a function of a message body, as
both the SQS worker and the Lambda batch handler call it): ``ConsumerSuccesses`` and
``ConsumerFailures`` per message, and a log line per failure with the envelope's ids.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from eventsourcing.persistence import IntegrityError

from adapters.observability.telemetry import (
    COMMANDS,
    CONFLICTS,
    CONSUMER_FAILURES,
    CONSUMER_SUCCESSES,
    RETRIES,
    SAVE_LATENCY,
    MetricsSink,
    event_fields,
)
from orders import (
    OrderConflictError,
    OrderEvent,
    OrderNotFoundError,
    OrderRuleError,
    OrderService,
)
from schemas.mapping import event_id

COMMAND_METHODS = (
    "place_order",
    "change_lines",
    "confirm_payment",
    "ship",
    "complete",
    "cancel",
)
"""The ``OrderService`` methods that are commands (each a value of the ``Command`` dimension)."""

DIRECT_SAVE = "save"
"""The ``Command`` dimension of a save made outside any command."""


@dataclass
class _Run:
    """What happened during one command."""

    command: str
    saves: int = 0
    conflicts: int = 0


_current: ContextVar[_Run | None] = ContextVar("order_command", default=None)


def _outcome(error: BaseException | None, run: _Run) -> str:
    if error is None:
        return "ok" if run.saves else "unchanged"
    if isinstance(error, OrderRuleError):
        return "rejected"
    if isinstance(error, OrderNotFoundError):
        return "not-found"
    if isinstance(error, OrderConflictError):
        return "conflict"
    return "error"


def observe_commands(service: OrderService, metrics: MetricsSink, logger: Logger) -> OrderService:
    """``service``, its commands and saves now reporting to ``metrics`` and ``logger``."""

    def command(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def observed(*args: Any, **kwargs: Any) -> Any:
            run = _Run(name)
            token = _current.set(run)
            error: BaseException | None = None
            try:
                return method(*args, **kwargs)
            except BaseException as raised:
                error = raised
                raise
            finally:
                _current.reset(token)
                outcome = _outcome(error, run)
                metrics.count(COMMANDS, Command=name, Outcome=outcome)
                if run.conflicts:
                    metrics.count(CONFLICTS, run.conflicts, Command=name)
                    retried = run.conflicts - (outcome == "conflict")
                    if retried:
                        metrics.count(RETRIES, retried, Command=name)

        return observed

    save = service.save

    @functools.wraps(save)
    def observed_save(*objs: Any, **kwargs: Any) -> Any:
        run = _current.get()
        started = time.perf_counter()
        try:
            recordings = save(*objs, **kwargs)
        except IntegrityError:
            if run is not None:
                run.conflicts += 1
            raise
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            metrics.gauge(SAVE_LATENCY, elapsed_ms, Command=run.command if run else DIRECT_SAVE)
        if run is not None:
            run.saves += 1
        for recording in recordings:
            event = recording.domain_event
            if isinstance(event, OrderEvent):
                logger.info("event saved", extra=order_event_fields(event))
        return recordings

    for name in COMMAND_METHODS:
        setattr(service, name, command(name, getattr(service, name)))
    service.save = observed_save  # type: ignore[method-assign]
    return service


def order_event_fields(event: OrderEvent, **more: object) -> dict[str, object]:
    """:func:`event_fields` of a stored order event (its published id, version and type too)."""
    return event_fields(
        event.originator_id,
        event_id(event),
        event.correlation_id,
        causation_id=event.causation_id,
        version=event.originator_version,
        event_type=event.type_name,
        **more,
    )


def envelope_fields(body: str) -> dict[str, object]:
    """The ids of the envelope in ``body`` for a log line (what can be read of them, if any)."""
    try:
        envelope = json.loads(body)
        detail = envelope.get("detail") or {}
        return event_fields(
            detail.get("orderId"),
            envelope.get("id"),
            detail.get("correlationId"),
            detail_type=envelope.get("detail-type"),
        )
    except (ValueError, AttributeError):
        return {"order_id": None, "event_id": None, "correlation_id": None}


def observe_consumer(
    handle: Callable[[str], None], metrics: MetricsSink, logger: Logger, consumer: str
) -> Callable[[str], None]:
    """``handle``, counting each message it handles or fails (the failure is re-raised)."""

    @functools.wraps(handle)
    def observed(body: str) -> None:
        try:
            handle(body)
        except Exception as error:
            metrics.count(CONSUMER_FAILURES, Consumer=consumer)
            logger.warning(
                "message failed",
                extra={**envelope_fields(body), "consumer": consumer, "error": str(error)},
            )
            raise
        metrics.count(CONSUMER_SUCCESSES, Consumer=consumer)
        logger.info("message handled", extra={**envelope_fields(body), "consumer": consumer})

    return observed
