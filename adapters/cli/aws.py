"""``orders aws setup``: every resource the README's AWS-side commands need, on a fresh endpoint.

Registered in ``adapters.cli.main``; the event store table is the global ``--table``. Endpoints
and credentials come from the standard AWS variables (``AWS_ENDPOINT_URL_DYNAMODB`` for
DynamoDB Local, ``AWS_ENDPOINT_URL`` for moto, ``AWS_DEFAULT_REGION`` ...).
"""

from __future__ import annotations

import sys
from typing import Annotated

import boto3
import typer
from rich.console import Console
from rich.table import Table

from adapters.bootstrap.consumers import DEFAULT_IDEMPOTENCY_TABLE, IDEMPOTENCY_TABLE_VARIABLE
from adapters.bootstrap.projections import VIEWS_TABLE_VARIABLE
from adapters.cli.relay import BusName
from adapters.deploy.setup import AwsTables, set_up_aws
from adapters.dynamodb.factory import WRITE_MODES, DynamoDBFactory
from adapters.eventbridge.wiring import BusWiring

aws_app = typer.Typer(no_args_is_help=True, help="AWS resources for development endpoints.")
console = Console(width=None if sys.stdout.isatty() else 160)


@aws_app.command("setup")
def aws_setup(
    context: typer.Context,
    *,
    bus: BusName = "orders",
    prefix: Annotated[str, typer.Option(help="Prefix of rule, queue and topic names")] = "orders",
    views_table: Annotated[
        str | None,
        typer.Option(envvar=VIEWS_TABLE_VARIABLE, help="The view table [default: <table>-views]"),
    ] = None,
    idempotency_table: Annotated[
        str,
        typer.Option(envvar=IDEMPOTENCY_TABLE_VARIABLE, help="Notifications' idempotency table"),
    ] = DEFAULT_IDEMPOTENCY_TABLE,
    write_mode: Annotated[
        str,
        typer.Option(
            envvar=DynamoDBFactory.DYNAMODB_WRITE_MODE,
            help=f"The store's write mode ({', '.join(WRITE_MODES)}); indexed needs the stream",
        ),
    ] = "transactional",
) -> None:
    """Create (or bring up to date) the tables, bus, rules, queues, DLQs and SNS topics."""
    from adapters.cli.main import settings_of  # noqa: PLC0415 - adapters.cli.main imports this module

    if write_mode not in WRITE_MODES:
        msg = f"--write-mode must be one of {', '.join(WRITE_MODES)}, not {write_mode!r}"
        raise typer.BadParameter(msg)
    events_table = settings_of(context).table
    tables = AwsTables(
        events=events_table,
        views=views_table or f"{events_table}-views",
        idempotency=idempotency_table,
        stream=write_mode == "indexed",
    )
    wiring = BusWiring(bus_name=bus, prefix=prefix)
    made = set_up_aws(
        boto3.client("dynamodb"),
        boto3.client("events"),
        boto3.client("sqs"),
        boto3.client("sns"),
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
    console.print(table)
