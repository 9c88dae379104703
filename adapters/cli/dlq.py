"""``orders dlq``: list a queue's dead letters with their reasons, and redrive them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import boto3
import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from adapters.sqs.worker import QueueError, dead_letters, queue_url, redrive, redrive_policy

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

dlq_app = typer.Typer(no_args_is_help=True, help="Dead-letter queues: list and redrive.")
console = Console(width=160)
errors = Console(stderr=True, soft_wrap=True)  # one line, however long

QueueArgument = Annotated[str, typer.Argument(help="The source queue (name or URL) of the DLQ")]


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


@dlq_app.command("list")
def list_dead_letters(
    queue: QueueArgument,
    limit: Annotated[int, typer.Option(min=1, help="At most this many messages")] = 100,
) -> None:
    """Show the dead letters of QUEUE with why each is there (left in place)."""
    try:
        client, _, dead_letter_url = _queues(queue)
        letters = dead_letters(client, dead_letter_url, limit)
    except (QueueError, BotoCoreError, ClientError) as error:
        raise _fail(error) from None
    table = Table(title=f"{len(letters)} dead letter(s) of {queue}")
    for column in ("message id", "receives", "reason", "body"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(letter.message_id, letter.receives, letter.reason, letter.body[:120])
    console.print(table)


@dlq_app.command("redrive")
def redrive_dead_letters(
    queue: QueueArgument,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many [default: all]")
    ] = None,
) -> None:
    """Send the dead letters of QUEUE back to it (receive, send, delete: at least once)."""
    try:
        client, url, dead_letter_url = _queues(queue)
        moved = redrive(client, dead_letter_url, url, limit)
    except (QueueError, BotoCoreError, ClientError) as error:
        raise _fail(error) from None
    console.print(f"redrove {moved} message(s) to {queue}")
