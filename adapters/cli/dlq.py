"""``orders dlq``: list a queue's dead letters with their reasons, and redrive them.

With ``--transport sqs`` (the default) QUEUE is an SQS queue (name or URL) with a redrive
policy; with ``--transport in-process`` it is a route of the local backend's in-process bus
(``views``), whose dead letters are kept in the local database (``--data-dir``) and redriven
through the same record handler the bus uses.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from adapters.bootstrap.clients import sqs_client
from adapters.bootstrap.consumers import local_dead_letters, local_handlers
from adapters.cli.context import backends, runtime_of
from adapters.cli.errors import CommandError
from adapters.cli.output import console, emit, printable, wants_json
from adapters.eventbridge.wiring import BusWiring
from adapters.sqs.dead_letters import dead_letters, redrive
from adapters.sqs.worker import QueueError, queue_url, redrive_policy

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

dlq_app = typer.Typer(no_args_is_help=True, help="Dead-letter queues: list and redrive.")

QueueArgument = Annotated[
    str,
    typer.Argument(help="The source queue (name or URL) of the DLQ; a bus route when local"),
]
WaitOption = Annotated[
    int,
    typer.Option(min=1, max=20, help="Long poll: an empty one of this many seconds ends it"),
]


def _queues(context: typer.Context, queue: str) -> tuple[SQSClient, str, str]:
    client = sqs_client(runtime_of(context).settings, wait_seconds=20)
    url = queue_url(client, queue)
    policy = redrive_policy(client, url)
    if policy is None:
        msg = f"queue {queue!r} has no dead-letter queue (no RedrivePolicy)"
        raise QueueError(msg)
    return client, url, policy.dead_letter_url


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
        raise CommandError(msg)
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
    if transport is Transport.IN_PROCESS:
        local = local_dead_letters(runtime_of(context).settings).list(_local_route(queue), limit)
        rows = [
            {
                "message_id": x.event_id,
                "receives": str(x.attempts),
                "reason": x.reason,
                "body": x.body,
            }
            for x in local
        ]
    else:
        client, _, dead_letter_url = _queues(context, queue)
        rows = [
            {
                "message_id": letter.message_id,
                "receives": letter.receives,
                "reason": letter.reason,
                "body": letter.body,
            }
            for letter in dead_letters(client, dead_letter_url, limit, wait_seconds=wait_seconds)
        ]
    if wants_json(context):
        emit(context, {"queue": queue, "dead_letters": rows})
        return
    table = Table(title=f"{len(rows)} dead letter(s) of {queue}")
    for column in ("message id", "receives", "reason", "body"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            Text(printable(row["message_id"])),
            Text(printable(row["receives"])),
            Text(printable(row["reason"])),
            Text(printable(row["body"][:120])),
        )
    console().print(table)


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
    if transport is Transport.IN_PROCESS:
        moved = _redrive_local(context, _local_route(queue), limit)
    else:
        client, url, dead_letter_url = _queues(context, queue)
        moved = redrive(client, dead_letter_url, url, limit, wait_seconds=wait_seconds)
    if wants_json(context):
        emit(context, {"queue": queue, "redriven": moved})
    else:
        typer.echo(f"redrove {moved} message(s) to {queue}")


def _redrive_local(context: typer.Context, route: str, limit: int | None) -> int:
    chosen = backends(context)
    handlers = local_handlers(chosen.service, chosen.store)
    if route not in handlers:
        msg = f"the local bus has no consumer on route {route!r} (only {', '.join(handlers)})"
        raise CommandError(msg)
    outcome = local_dead_letters(runtime_of(context).settings).redrive(
        route, handlers[route], limit
    )
    if outcome.failed:
        msg = f"{outcome.failed} dead letter(s) of {route} failed again ({outcome.applied} applied)"
        raise CommandError(msg)
    return outcome.applied
