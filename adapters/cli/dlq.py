"""``orders dlq``: list a queue's dead letters with their reasons, and redrive them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import boto3
import typer
from rich.table import Table
from rich.text import Text

from adapters.cli.output import console, emit, printable, wants_json
from adapters.sqs.worker import QueueError, dead_letters, queue_url, redrive, redrive_policy

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

dlq_app = typer.Typer(no_args_is_help=True, help="Dead-letter queues: list and redrive.")

QueueArgument = Annotated[str, typer.Argument(help="The source queue (name or URL) of the DLQ")]


def _queues(queue: str) -> tuple[SQSClient, str, str]:
    client = boto3.client("sqs")
    url = queue_url(client, queue)
    policy = redrive_policy(client, url)
    if policy is None:
        msg = f"queue {queue!r} has no dead-letter queue (no RedrivePolicy)"
        raise QueueError(msg)
    return client, url, policy.dead_letter_url


@dlq_app.command("list")
def list_dead_letters(
    context: typer.Context,
    queue: QueueArgument,
    limit: Annotated[int, typer.Option(min=1, help="At most this many messages")] = 100,
) -> None:
    """Show the dead letters of QUEUE with why each is there (left in place)."""
    client, _, dead_letter_url = _queues(queue)
    letters = dead_letters(client, dead_letter_url, limit)
    if wants_json(context):
        rows = [
            {
                "message_id": letter.message_id,
                "receives": letter.receives,
                "reason": letter.reason,
                "body": letter.body,
            }
            for letter in letters
        ]
        emit(context, {"queue": queue, "dead_letters": rows})
        return
    table = Table(title=f"{len(letters)} dead letter(s) of {queue}")
    for column in ("message id", "receives", "reason", "body"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(
            Text(printable(letter.message_id)),
            Text(printable(letter.receives)),
            Text(printable(letter.reason)),
            Text(printable(letter.body[:120])),
        )
    console().print(table)


@dlq_app.command("redrive")
def redrive_dead_letters(
    context: typer.Context,
    queue: QueueArgument,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many [default: all]")
    ] = None,
) -> None:
    """Send the dead letters of QUEUE back to it (receive, send, delete: at least once)."""
    client, url, dead_letter_url = _queues(queue)
    moved = redrive(client, dead_letter_url, url, limit)
    if wants_json(context):
        emit(context, {"queue": queue, "redriven": moved})
    else:
        typer.echo(f"redrove {moved} message(s) to {queue}")
