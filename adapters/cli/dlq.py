"""``orders dlq``: list a queue's dead letters with their reasons, and redrive them.

With ``--transport sqs`` (the default) QUEUE is an SQS queue (name or URL) with a redrive
policy; with ``--transport in-process`` it is a route of the local backend's in-process bus
(``views``), whose dead letters are kept in the local database (``--data-dir``) and redriven
through the same record handler the bus uses.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import boto3
import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from adapters.bootstrap.consumers import local_dead_letters, local_handlers
from adapters.cli.context import backends, runtime_of
from adapters.eventbridge.wiring import BusWiring
from adapters.sqs.dead_letters import RedriveError, dead_letters, redrive
from adapters.sqs.worker import QueueError, queue_url, redrive_policy

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

dlq_app = typer.Typer(no_args_is_help=True, help="Dead-letter queues: list and redrive.")
console = Console(width=160)
errors = Console(stderr=True)

QueueArgument = Annotated[
    str,
    typer.Argument(help="The source queue (name or URL) of the DLQ; a bus route when local"),
]
WaitOption = Annotated[
    int,
    typer.Option(min=1, max=20, help="Long poll: an empty one of this many seconds ends it"),
]


def _queues(queue: str) -> tuple[SQSClient, str, str]:
    client = boto3.client("sqs")
    url = queue_url(client, queue)
    policy = redrive_policy(client, url)
    if policy is None:
        msg = f"queue {queue!r} has no dead-letter queue (no RedrivePolicy)"
        raise QueueError(msg)
    return client, url, policy.dead_letter_url


def _fail(error: Exception) -> typer.Exit:
    errors.print(f"error: {error}", markup=False, highlight=False)
    return typer.Exit(1)


class Transport(StrEnum):
    """Where the dead letters are."""

    SQS = "sqs"
    IN_PROCESS = "in-process"


TransportOption = Annotated[
    Transport, typer.Option(help="SQS, or the local backend's in-process bus")
]


def _local_route(queue: str) -> str:
    routes = [route.name for route in BusWiring().routes]
    if queue not in routes:
        msg = f"the local bus has no route {queue!r} (routes: {', '.join(routes)})"
        raise QueueError(msg)
    return queue


@dlq_app.command("list")
def list_dead_letters(
    context: typer.Context,
    queue: QueueArgument,
    limit: Annotated[int, typer.Option(min=1, help="At most this many messages")] = 100,
    wait_seconds: WaitOption = 2,
    transport: TransportOption = Transport.SQS,
) -> None:
    """Show the dead letters of QUEUE with why each is there (left in place)."""
    table = Table(title=f"dead letters of {queue}")
    for column in ("message id", "receives", "reason", "body"):
        table.add_column(column, overflow="fold")
    try:
        if transport is Transport.IN_PROCESS:
            letters = local_dead_letters(runtime_of(context).settings).list(
                _local_route(queue), limit
            )
            for local in letters:
                table.add_row(local.event_id, str(local.attempts), local.reason, local.body[:120])
        else:
            client, _, dead_letter_url = _queues(queue)
            for letter in dead_letters(client, dead_letter_url, limit, wait_seconds=wait_seconds):
                table.add_row(letter.message_id, letter.receives, letter.reason, letter.body[:120])
    except (QueueError, BotoCoreError, ClientError) as error:
        raise _fail(error) from None
    table.title = f"{table.row_count} dead letter(s) of {queue}"
    console.print(table)


@dlq_app.command("redrive")
def redrive_dead_letters(
    context: typer.Context,
    queue: QueueArgument,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many [default: all]")
    ] = None,
    wait_seconds: WaitOption = 2,
    transport: TransportOption = Transport.SQS,
) -> None:
    """Send the dead letters of QUEUE back to it (receive, send, delete: at least once).

    In process, each is handed to the route's consumer again; one that succeeds is
    removed, one that fails again stays with its new reason.
    """
    try:
        if transport is Transport.IN_PROCESS:
            moved = _redrive_local(context, _local_route(queue), limit)
        else:
            client, url, dead_letter_url = _queues(queue)
            moved = redrive(client, dead_letter_url, url, limit, wait_seconds=wait_seconds)
    except (QueueError, RedriveError, BotoCoreError, ClientError) as error:
        raise _fail(error) from None
    console.print(f"redrove {moved} message(s) to {queue}")


def _redrive_local(context: typer.Context, route: str, limit: int | None) -> int:
    chosen = backends(context)
    handlers = local_handlers(chosen.service, chosen.store)
    if route not in handlers:
        msg = f"the local bus has no consumer on route {route!r} (only {', '.join(handlers)})"
        raise QueueError(msg)
    outcome = local_dead_letters(runtime_of(context).settings).redrive(
        route, handlers[route], limit
    )
    if outcome.failed:
        msg = f"{outcome.failed} dead letter(s) of {route} failed again ({outcome.applied} applied)"
        raise QueueError(msg)
    return outcome.applied
