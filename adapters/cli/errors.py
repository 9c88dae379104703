"""The CLI's one error boundary: every error of every command is one line on stderr.

:class:`OneLineErrors` is the ``orders`` app's root command class, so every command (sub-apps
included) runs inside it, and no command has a boundary of its own. The line is always
``orders: error: <message>``; the exit status says what kind of error it was:

===  =====================================================================================
0    success
1    operational: the command was refused or could not run (an unknown order, a rule of the
     domain, an unreachable server, a missing table, a bad data directory)
2    usage: a malformed argument or option (an id that is not a uuid, a bad price or amount,
     an unknown option), whichever command it is given to
3    verify mismatch: a verify found differences (``VerifyMismatchError``)
===  =====================================================================================

``ORDERS_TRACEBACK=1`` lets unexpected errors show their traceback. Global options
(:data:`GLOBAL_OPTIONS`) are accepted after the subcommand too: :func:`hoist_global_options`
moves them in front before parsing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer vendors click
from typer.core import TyperGroup

EXIT_OK = 0
EXIT_OPERATIONAL = 1
EXIT_USAGE = 2
EXIT_VERIFY_MISMATCH = 3

GLOBAL_OPTIONS = frozenset({"--backend", "--data-dir", "--table", "--output", "-o"})
"""The root's options that take a value; accepted before or after the subcommand."""

GLOBAL_FLAGS = frozenset({"--json", "--jsonl"})
"""The root's flags (no value); accepted before or after the subcommand."""


class CommandError(Exception):
    """An operational error a command raises on purpose: reported by its message, exit 1."""


class DataDirError(CommandError):
    """The local backend's data directory cannot be used (missing, not a directory, read-only,
    a file in it is not an SQLite database): the message names the path."""


class VerifyMismatchError(CommandError):
    """A verify found differences (already printed): exit 3."""


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """``args`` with every global option (and its value) moved in front of the subcommand.

    ``orders show ID --output json`` becomes ``orders --output json show ID``. Arguments after
    ``--`` are left alone.
    """
    hoisted: list[str] = []
    rest: list[str] = []
    arguments = iter(args)
    for argument in arguments:
        if argument == "--":
            rest.extend(["--", *arguments])
            break
        name = argument.split("=", 1)[0]
        if argument in GLOBAL_FLAGS:
            hoisted.append(argument)
        elif name in GLOBAL_OPTIONS:
            hoisted.append(argument)
            value = None if "=" in argument else next(arguments, None)
            if value is not None:  # a missing value: click says so
                hoisted.append(value)
        else:
            rest.append(argument)
    return hoisted + rest


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _operational_errors() -> tuple[type[BaseException], ...]:
    """What a user can cause or fix, reported by its message alone. Imported only when an
    error is reported, so starting a command loads none of these modules."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    from eventsourcing.persistence import PersistenceError  # noqa: PLC0415

    from adapters.bootstrap.consumers import ConsumerConfigError  # noqa: PLC0415
    from adapters.deploy.resources import MissingResourceError  # noqa: PLC0415
    from adapters.relay.ports import RelayError  # noqa: PLC0415
    from adapters.settings import SettingsError  # noqa: PLC0415
    from adapters.sqs.dead_letters import RedriveError  # noqa: PLC0415
    from adapters.sqs.worker import QueueError  # noqa: PLC0415
    from adapters.supervisor import WorkerStoppedError  # noqa: PLC0415
    from orders.errors import OrderError  # noqa: PLC0415
    from projections.generations import NotCaughtUpError  # noqa: PLC0415
    from projections.ports import ViewStoreError  # noqa: PLC0415
    from projections.runtime import RunnerStoppedError  # noqa: PLC0415

    return (
        CommandError,
        SettingsError,
        OrderError,
        PersistenceError,
        BotoCoreError,
        ClientError,
        OSError,
        TimeoutError,
        QueueError,
        RedriveError,
        RelayError,
        WorkerStoppedError,
        ConsumerConfigError,
        MissingResourceError,
        ViewStoreError,
        NotCaughtUpError,
        RunnerStoppedError,
    )


def describe(error: BaseException) -> str:
    """One line saying what went wrong and, for a known configuration error, what to do."""
    from botocore.exceptions import (  # noqa: PLC0415
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    for cause in _causes(error):
        if isinstance(cause, NoRegionError):
            return (
                "no AWS region configured: set AWS_DEFAULT_REGION (any region name for "
                "DynamoDB Local or moto), or use --backend local"
            )
        if isinstance(cause, NoCredentialsError):
            return (
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or "
                "AWS_PROFILE (any values for DynamoDB Local or moto), or use --backend local"
            )
        if isinstance(cause, EndpointConnectionError):
            return one_line(
                f"{error} (is the server running? the endpoint comes from "
                "AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL)"
            )
        if isinstance(cause, ValueError) and str(cause).startswith("Invalid endpoint"):
            return one_line(
                f"{cause} (the endpoint comes from AWS_ENDPOINT_URL_<SERVICE> or "
                "AWS_ENDPOINT_URL: a URL such as http://127.0.0.1:8000)"
            )
    message = str(error) or type(error).__name__
    if not isinstance(error, _operational_errors()):
        message = f"unexpected {type(error).__name__}: {message}"
    return one_line(message)


def one_line(message: str) -> str:
    """``message`` with its line breaks and runs of spaces collapsed."""
    return " ".join(message.split())


def fail(message: str, exit_code: int) -> NoReturn:
    """Print ``orders: error: <message>`` on stderr and exit with ``exit_code``."""
    from adapters.cli.output import printable  # noqa: PLC0415

    typer.echo(f"orders: error: {printable(one_line(message))}", err=True)
    sys.exit(exit_code)


class OneLineErrors(TyperGroup):
    """A root command group that turns every error of its commands into one line on stderr."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Runs the command; in standalone mode (the console script) exits with its status."""
        arguments = hoist_global_options(sys.argv[1:] if args is None else args)
        if not standalone_mode:
            return super().main(arguments, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(
                arguments, prog_name, complete_var, standalone_mode=False, **extra
            )
        except NoArgsIsHelpError as error:
            typer.echo(error.format_message(), err=True)
            sys.exit(EXIT_USAGE)
        except UsageError as error:
            where = error.ctx.command_path if error.ctx else "orders"
            fail(f"{error.format_message()} (see {where} --help)", EXIT_USAGE)
        except VerifyMismatchError as error:
            fail(str(error), EXIT_VERIFY_MISMATCH)
        except typer.Abort:
            fail("aborted", 130)
        except Exception as error:
            from adapters.settings import traceback_requested  # noqa: PLC0415

            if traceback_requested():
                raise
            fail(describe(error), EXIT_OPERATIONAL)
        sys.exit(result if isinstance(result, int) else EXIT_OK)
