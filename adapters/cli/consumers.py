"""``orders consumers run``: the long-lived SQS worker of the downstream consumers."""

from __future__ import annotations

from typing import Annotated

import boto3
import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from adapters.bootstrap.consumers import (
    DEFAULT_IDEMPOTENCY_TABLE,
    IDEMPOTENCY_TABLE_VARIABLE,
    TOPIC_VARIABLE,
    Consumer,
    ConsumerConfigError,
    dispatcher,
)
from adapters.cli.projections import Backends, backends
from adapters.observability.observed import observe_consumer
from adapters.observability.telemetry import get_logger
from adapters.sqs.worker import BatchOutcome, QueueError, SqsConsumer, queue_url
from adapters.supervisor import WorkerStoppedError, stop_on_signals

consumers_app = typer.Typer(no_args_is_help=True, help="SQS consumers: views, notifications, saga.")
console = Console(width=160)
errors = Console(stderr=True)


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
        str | None, typer.Option(envvar=TOPIC_VARIABLE, help="SNS topic of the notifications")
    ] = None,
    idempotency_table: Annotated[
        str,
        typer.Option(envvar=IDEMPOTENCY_TABLE_VARIABLE, help="Powertools idempotency table"),
    ] = DEFAULT_IDEMPOTENCY_TABLE,
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
    from adapters.cli.main import settings_of  # noqa: PLC0415 - adapters.cli.main imports this module

    chosen: list[Backends] = []

    def chosen_backends() -> Backends:  # built only if a consumer asks for them
        if not chosen:
            chosen.append(backends(context))
        return chosen[0]

    try:
        record_handler = observe_consumer(
            dispatcher(
                consumer or [Consumer.VIEWS],
                service=lambda: chosen_backends().service,
                view_store=lambda: chosen_backends().store,
                topic_arn=topic_arn,
                idempotency_table=idempotency_table,
            ),
            settings_of(context).metrics,
            get_logger(),
            ",".join(c.value for c in consumer or [Consumer.VIEWS]),
        )
        client = boto3.client("sqs")
        worker = SqsConsumer(
            client,
            queue_url(client, queue),
            record_handler,
            batch_size=batch_size,
            wait_seconds=wait_seconds,
            visibility_timeout=visibility_timeout,
            retry_delay=retry_delay,
        )
    except (ConsumerConfigError, QueueError, BotoCoreError, ClientError) as error:
        errors.print(f"error: {error}", markup=False, highlight=False)
        raise typer.Exit(1) from None

    console.print(f"consuming {queue} ({', '.join(c.value for c in consumer or [Consumer.VIEWS])})")

    def announce(name: str) -> None:
        console.print(f"{name}: stopping after the batch in work")

    with stop_on_signals(announce=announce) as stop:
        try:
            worker.run(stop, on_batch=_report, metrics=settings_of(context).metrics)
        except WorkerStoppedError as error:
            errors.print(f"error: {error}", markup=False, highlight=False)
            raise typer.Exit(1) from None
    console.print("stopped")


def _report(outcome: BatchOutcome) -> None:
    console.print(
        f"received {outcome.received}, handled {outcome.succeeded}, "
        f"failed {len(outcome.failed)}, dead-lettered {outcome.dead_lettered}"
    )
