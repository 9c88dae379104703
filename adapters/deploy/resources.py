"""The one line every error about a missing AWS resource says: which one, and the command
that creates it (``orders aws setup``, :mod:`adapters.deploy.setup`). Imports nothing, so any
adapter can use it."""

from __future__ import annotations

from typing import Final

SETUP_COMMAND: Final = "orders aws setup"
"""The command that creates every resource the AWS-side commands need."""


class MissingResourceError(RuntimeError):
    """A resource a command needs does not exist; the message says which and what creates it."""


def missing(what: str) -> str:
    """``what`` does not exist, and which command creates it."""
    return f"{what} does not exist (create it: {SETUP_COMMAND})"
