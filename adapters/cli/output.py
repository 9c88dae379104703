"""How every ``orders`` command prints: data on stdout (text or JSON), the rest on stderr.

``--output text`` (the default) is for people; ``--output json`` prints exactly one JSON
document per command (``jsonl``: one JSON object per line, where a command prints a sequence),
with stable field names, so scripts never parse text. Progress, notes and errors go to stderr
in every format. Anything user-supplied is shown through :func:`printable`, which escapes
control, format (bidi, zero-width) and separator characters, so stored text can never move the
cursor, clear the screen or reorder what a terminal shows.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

import typer

if TYPE_CHECKING:
    from rich.console import Console

META_KEY = "orders.output"
"""Where the root callback keeps the chosen :class:`Format` (``context.meta``)."""

_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class Format(StrEnum):
    """What a command prints on stdout."""

    TEXT = "text"
    JSON = "json"
    JSONL = "jsonl"


def printable(value: object) -> str:
    """``str(value)`` with every character a terminal would act on escaped.

    Control characters (``\\x1b``, ``\\n``, ``\\x7f``, C1), format characters (bidi overrides
    and isolates, zero-width spaces and joiners, the BOM), line and paragraph separators and
    unassigned code points become ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``; a backslash
    becomes ``\\\\``, so the escaped text reads back unambiguously. Other text is unchanged.
    """
    text = str(value)
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape(character) for character in text)


def _escape(character: str) -> str:
    if character == "\\":
        return "\\\\"
    if character != " " and unicodedata.category(character) in _ESCAPED_CATEGORIES:
        code = ord(character)
        if code <= 0xFF:
            return f"\\x{code:02x}"
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return character


def output_format(context: typer.Context) -> Format:
    """The format the global ``--output`` option chose (text when no root callback ran)."""
    chosen = context.meta.get(META_KEY, Format.TEXT)
    return Format(chosen)


def wants_json(context: typer.Context) -> bool:
    """Whether the command prints JSON (``json`` or ``jsonl``) instead of text."""
    return output_format(context) is not Format.TEXT


def emit(context: typer.Context, document: Any) -> None:
    """Print ``document`` (JSON-native) as the command's one JSON result.

    In ``jsonl``, a list prints one element per line and anything else one line.
    """
    if output_format(context) is Format.JSONL:
        for item in document if isinstance(document, list) else [document]:
            typer.echo(json.dumps(item, ensure_ascii=False))
        return
    emit_json(document)


def emit_json(document: Any) -> None:
    """Print ``document`` (JSON-native) as one indented JSON document."""
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def emit_line(document: Mapping[str, Any]) -> None:
    """One JSON object on one line, flushed (for commands that follow a stream)."""
    sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """A diagnostic or progress line: on stderr, never mixed with the data."""
    typer.echo(message, err=True)


def console() -> Console:
    """A rich console on stdout for tables; piped output gets a width that fits whole ids."""
    from rich.console import Console  # noqa: PLC0415 - rich loads only where a table is shown

    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def stderr_console() -> Console:
    """A rich console on stderr, for progress bars."""
    from rich.console import Console  # noqa: PLC0415 - rich loads only where progress is shown

    return Console(stderr=True, highlight=False)


def key_values(rows: Iterable[tuple[str, object]], indent: str = "") -> list[str]:
    """``key  value`` lines, keys padded to one column, values never cut (``str`` of each:
    escape user-supplied text with :func:`printable` first)."""
    pairs = [(key, str(value)) for key, value in rows]
    width = max((len(key) for key, _ in pairs), default=0)
    return [f"{indent}{key.ljust(width)}  {value}".rstrip() for key, value in pairs]


def row_document(row: Any) -> dict[str, Any] | None:
    """A view row as JSON (its version and data, decimals as their digits)."""
    if row is None:
        return None
    return {"version": row.version, "data": {k: plain(v) for k, v in dict(row.data).items()}}


def plain(value: Any) -> Any:
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value
