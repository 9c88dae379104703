"""``orders log tail``: follow the notification log, as ``tail -f`` follows a file."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from adapters.cli.context import runtime_of
from adapters.cli.output import Format, emit, emit_line, note, output_format
from adapters.supervisor import stop_on_signals

log_app = typer.Typer(no_args_is_help=True, help="The notification log: follow it.")


def _document(notification: Any) -> dict[str, Any]:
    return {
        "id": notification.id,
        "originator_id": str(notification.originator_id),
        "originator_version": notification.originator_version,
        "topic": notification.topic,
    }


@log_app.command()
def tail(
    context: typer.Context,
    start: Annotated[
        int | None,
        typer.Option("--from", min=1, help="First notification id [default: the last 10]"),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many [default: no bound]")
    ] = None,
    once: Annotated[bool, typer.Option(help="Print what the log holds now, then exit")] = False,
    poll_interval: Annotated[float, typer.Option(min=0.01, help="Seconds between reads")] = 0.5,
) -> None:
    """Print each notification (id, order, version, event type) as it reaches the log, until
    SIGTERM or Ctrl-C (or ``--once``, ``--limit``). ``--output json`` with ``--once`` prints
    one list; otherwise JSON is one object per line."""
    service = runtime_of(context).existing_service()  # held: it closes its store when freed
    recorder = service.recorder
    head = recorder.max_notification_id() or 0
    position = (start or max(head - 9, 1)) - 1
    printed: list[dict[str, Any]] = []
    count = 0
    collect = once and output_format(context) is Format.JSON
    with stop_on_signals() as stop:
        while not stop.is_set():
            batch = limit - count if limit is not None else 100
            notifications = recorder.select_notifications(
                position + 1, min(batch, 100), inclusive_of_start=True
            )
            for notification in notifications:
                document = _document(notification)
                position = notification.id
                count += 1
                if collect:
                    printed.append(document)
                    continue
                if output_format(context) is Format.TEXT:
                    typer.echo(
                        f"{document['id']}  {document['originator_id']}  "
                        f"v{document['originator_version']}  {document['topic']}"
                    )
                else:
                    emit_line(document)
            if (limit is not None and count >= limit) or (once and not notifications):
                break
            if not notifications:
                stop.wait(poll_interval)
    if collect:
        emit(context, printed)
    elif output_format(context) is Format.TEXT:
        note(f"log tail: {count} notifications, last id {position}")
