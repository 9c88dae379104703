"""``orders consumers run``: the long-lived SQS worker of the downstream consumers."""

from __future__ import annotations

from typing import Annotated

import typer

from adapters.bootstrap.clients import dynamodb_client, sns_client, sqs_client
from adapters.bootstrap.consumers import Consumer, dispatcher
from adapters.cli.context import Backends, backends, runtime_of
from adapters.cli.output import note
from adapters.observability.observed import observe_consumer
from adapters.observability.telemetry import get_logger
from adapters.sns.idempotency import require_idempotency_table
from adapters.sns.publisher import require_topic
from adapters.sqs.worker import BatchOutcome, SqsConsumer, queue_url
from adapters.supervisor import stop_on_signals

consumers_app = typer.Typer(no_args_is_help=True, help="SQS consumers: views, notifications, saga.")


@consumers_app.command("run")
def run(
    context: typer.Context,
    *,
    queue: Annotated[str, typer.Option(help="The queue to consume (name or URL)")],
    consumer: Annotated[
        list[Consumer] | None,
        typer.Option(help="What to do with its messages (repeat for several) [default: views]"),
    ] = None,
    topic_arn: Annotated[
        str | None,
        typer.Option(
            help="SNS topic of the notifications [default: $ORDERS_NOTIFICATIONS_TOPIC_ARN]"
        ),
    ] = None,
    idempotency_table: Annotated[
        str | None,
        typer.Option(
            help="Powertools idempotency table [default: $ORDERS_IDEMPOTENCY_TABLE or "
            "orders-idempotency]"
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10, help="Messages per receive")] = 10,
    wait_seconds: Annotated[int, typer.Option(min=0, max=20, help="Long-poll seconds")] = 20,
    visibility_timeout: Annotated[
        int, typer.Option(min=1, help="Seconds a batch in work stays hidden (renewed)")
    ] = 30,
    retry_delay: Annotated[
        int | None,
        typer.Option(min=0, help="Seconds before a failed message returns [default: queue's]"),
    ] = None,
) -> None:
    """Consume QUEUE until SIGTERM or Ctrl-C: the batch in work is finished and deleted first,
    so a stop takes at most one long poll (the wait seconds) plus that batch."""
    runtime = runtime_of(context)
    overrides = {"notifications_topic_arn": topic_arn, "idempotency_table": idempotency_table}
    settings = runtime.settings.model_copy(
        update={name: value for name, value in overrides.items() if value is not None}
    )
    chosen: list[Backends] = []

    def chosen_backends() -> Backends:  # built only if a consumer asks for them
        if not chosen:
            chosen.append(backends(context))
        return chosen[0]

    record_handler = observe_consumer(
        dispatcher(
            consumer or [Consumer.VIEWS],
            service=lambda: chosen_backends().service,
            view_store=lambda: chosen_backends().store,
            settings=settings,
        ),
        runtime.metrics,
        get_logger(),
        ",".join(c.value for c in consumer or [Consumer.VIEWS]),
    )
    if Consumer.NOTIFICATIONS in (consumer or []):
        require_idempotency_table(dynamodb_client(settings), settings.idempotency_table)
        require_topic(sns_client(settings), settings.notifications_topic_arn or "")
    client = sqs_client(settings, wait_seconds=wait_seconds)
    worker = SqsConsumer(
        client,
        queue_url(client, queue),
        record_handler,
        batch_size=batch_size,
        wait_seconds=wait_seconds,
        visibility_timeout=visibility_timeout,
        retry_delay=retry_delay,
    )
    note(f"consuming {queue} ({', '.join(c.value for c in consumer or [Consumer.VIEWS])})")

    def announce(name: str) -> None:
        note(f"{name}: stopping after the batch in work")

    with stop_on_signals(announce=announce) as stop:
        worker.run(stop, on_batch=_report, metrics=runtime.metrics)
    note("stopped")


def _report(outcome: BatchOutcome) -> None:
    note(
        f"received {outcome.received}, handled {outcome.succeeded}, "
        f"failed {len(outcome.failed)}, dead-lettered {outcome.dead_lettered}"
    )
