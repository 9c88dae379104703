"""``orders aws setup``: every resource the README's AWS-side commands need, on a fresh endpoint.

Registered in ``adapters.cli.main``; the event store table is the global ``--table``. Endpoints
and credentials come from the standard AWS variables (``AWS_ENDPOINT_URL_DYNAMODB`` for
DynamoDB Local, ``AWS_ENDPOINT_URL`` for moto, ``AWS_DEFAULT_REGION`` ...).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from adapters.bootstrap.clients import dynamodb_client, events_client, sns_client, sqs_client
from adapters.cli.context import runtime_of
from adapters.cli.output import console
from adapters.cli.relay import BusName
from adapters.deploy.setup import AwsTables, set_up_aws
from adapters.eventbridge.wiring import BusWiring
from adapters.settings import WriteMode

aws_app = typer.Typer(no_args_is_help=True, help="AWS resources for development endpoints.")


@aws_app.command("setup")
def aws_setup(
    context: typer.Context,
    *,
    bus: BusName = None,
    prefix: Annotated[str, typer.Option(help="Prefix of rule, queue and topic names")] = "orders",
    write_mode: Annotated[
        WriteMode | None,
        typer.Option(
            help="The store's write mode; indexed needs the stream "
            "[default: $DYNAMODB_WRITE_MODE or transactional]"
        ),
    ] = None,
) -> None:
    """Create (or bring up to date) the tables, bus, rules, queues, DLQs and SNS topics
    (names from the settings: orders config)."""
    settings = runtime_of(context).settings
    tables = AwsTables(
        events=settings.events_table,
        views=settings.views_table_name,
        idempotency=settings.idempotency_table,
        stream=(write_mode or settings.write_mode) is WriteMode.INDEXED,
    )
    wiring = BusWiring(bus_name=bus or settings.bus_name, prefix=prefix)
    made = set_up_aws(
        dynamodb_client(settings),
        events_client(settings),
        sqs_client(settings),
        sns_client(settings),
        tables=tables,
        wiring=wiring,
    )
    table = Table(title="resources", show_header=False)
    stream = "with its stream" if tables.stream else "no stream (transactional mode)"
    table.add_row("event store table", f"{tables.events} ({stream})")
    table.add_row("view table", tables.views)
    table.add_row("idempotency table", tables.idempotency)
    table.add_row("bus", made.bus.bus_arn)
    for route in wiring.routes:
        table.add_row(f"route {route.name}", wiring.queue_name(route))
        table.add_row(f"route {route.name} dlq", wiring.dead_letter_queue_name(route))
    for topic, arn in made.topic_arns.items():
        table.add_row(f"topic {topic}", arn)
    console().print(table)
