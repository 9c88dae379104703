"""The CLI's error boundary: every error reaches the user as one line on stderr, never a traceback.

:class:`OneLineErrors` is the ``orders`` app's root command class, so every command, sub-apps
added with ``app.add_typer`` included, runs inside it. A usage error (a malformed id, a bad
option) exits 2; any other error exits 1, with a message from :func:`describe`: the error's own
text, plus what to do for the configuration errors a newcomer meets (no region, no credentials,
an unreachable endpoint). ``ORDERS_TRACEBACK=1`` lets unexpected errors show their traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import typer
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)
from eventsourcing.persistence import PersistenceError
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer vendors click
from typer.core import TyperGroup

from adapters.supervisor import WorkerStoppedError
from orders import OrderError

TRACEBACK_VARIABLE = "ORDERS_TRACEBACK"

_HINTS: dict[type[BaseException], str] = {
    NoRegionError: (
        "no AWS region configured: set AWS_DEFAULT_REGION (any region name for DynamoDB Local "
        "or moto), or use --backend local"
    ),
    NoCredentialsError: (
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or "
        "AWS_PROFILE (any values for DynamoDB Local or moto), or use --backend local"
    ),
}

OPERATIONAL_ERRORS: tuple[type[BaseException], ...] = (
    OrderError,
    PersistenceError,
    BotoCoreError,
    ClientError,
    OSError,
    WorkerStoppedError,
)
"""What a user can cause or fix (bad input, configuration, an unreachable or missing resource);
reported by their message alone. Anything else is reported with its type too."""


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def describe(error: BaseException) -> str:
    """One line saying what went wrong and, for a known configuration error, what to do."""
    for cause in _causes(error):
        for kind, hint in _HINTS.items():
            if isinstance(cause, kind):
                return hint
        if isinstance(cause, EndpointConnectionError):
            return (
                f"{error} (is the server running? the endpoint comes from "
                "AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL)"
            )
    message = str(error) or type(error).__name__
    if not isinstance(error, OPERATIONAL_ERRORS):
        message = f"unexpected {type(error).__name__}: {message}"
    return one_line(message)


def one_line(message: str) -> str:
    """``message`` with its line breaks and runs of spaces collapsed."""
    return " ".join(message.split())


def fail(command_path: str, message: str, exit_code: int) -> NoReturn:
    """Print ``<command>: error: <message>`` on stderr and exit with ``exit_code``."""
    typer.echo(f"{command_path}: error: {one_line(message)}", err=True)
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
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        name = prog_name or "orders"
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as error:
            typer.echo(error.format_message(), err=True)
            sys.exit(error.exit_code)
        except UsageError as error:
            where = error.ctx.command_path if error.ctx else name
            fail(where, f"{error.format_message()} (see --help)", error.exit_code)
        except typer.TyperException as error:
            fail(name, error.format_message(), error.exit_code)
        except typer.Abort:
            fail(name, "aborted", 130)
        except Exception as error:
            if os.environ.get(TRACEBACK_VARIABLE) == "1":
                raise
            fail(name, describe(error), 1)
        sys.exit(result if isinstance(result, int) else 0)
