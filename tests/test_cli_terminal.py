"""``orders`` at a terminal: run in a pseudo-terminal of 80 and of 120 columns, the audit view
shows every field whole, and text a user stored can never act on the terminal."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from adapters.local.backend import local_env
from orders import OrderLine, OrderService

ESCAPE_SKU = "A\x1b[2JB"
ESCAPE_PLACEHOLDER = "ESCAPE-SKU-PLACEHOLDER"
RED_PLACEHOLDER = "RED-REASON-PLACEHOLDER"
BIDI_SKU = "X\u202eY\u200bZ"
ORDERS = str(Path(sys.executable).with_name("orders"))


def in_terminal(columns: int, *arguments: str) -> str:
    """What ``orders *arguments`` writes to a terminal ``columns`` wide (bounded: 60 s)."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        [ORDERS, *arguments],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "COLUMNS": str(columns), "TERM": "xterm"},
        close_fds=True,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=10) == 0, b"".join(chunks)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.fixture(scope="module")
def journeys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, UUID, UUID]:
    """A data dir with an order that went through every event type but cancelling (placed,
    lines changed, paid, shipped, completed) and one that was cancelled, both with SKUs that
    hold escape sequences and bidi and zero-width characters.

    The domain refuses control characters in new text (``text-printable``), so the escape
    sequences are written into the stored events afterwards, as an older version of the
    service or another writer of the database could have stored them."""
    data_dir = tmp_path_factory.mktemp("terminal")
    service = OrderService(env=local_env(data_dir))
    lines = [OrderLine(ESCAPE_PLACEHOLDER, 2, Decimal("12.50"))]
    completed = service.place_order("customer-with-a-long-id-0123456789", lines, "EUR").order_id
    service.change_lines(completed, [*lines, OrderLine(BIDI_SKU, 1, Decimal("3.25"))])
    service.confirm_payment(completed, "payment-0123456789-abcdefghij", Decimal("28.25"))
    service.ship(completed, causation_id="warehouse-message-0123456789")
    service.complete(completed, causation_id="carrier-message-0123456789")
    cancelled = service.place_order("c-2", lines, "EUR").order_id
    service.cancel(cancelled, f"the customer changed their mind {RED_PLACEHOLDER}")
    service.close()
    stored = {
        ESCAPE_PLACEHOLDER: json.dumps(ESCAPE_SKU)[1:-1],
        RED_PLACEHOLDER: json.dumps("\x1b[31mred\x1b[0m")[1:-1],
    }
    with contextlib.closing(sqlite3.connect(data_dir / "events.sqlite3")) as database:
        for placeholder, text in stored.items():
            database.execute(
                "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), ?, ?) AS BLOB)",
                (placeholder, text),
            )
        database.commit()
    return data_dir, completed, cancelled


def leaves(value: Any) -> list[str]:
    """Every scalar of a JSON value, as text."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in leaves(item)]
    if isinstance(value, list):
        return [text for item in value for text in leaves(item)]
    return [] if value is None else [str(value)]


@pytest.mark.parametrize("columns", [80, 120])
def test_history_shows_every_field_of_every_event_whole(
    journeys: tuple[Path, UUID, UUID], columns: int
) -> None:
    data_dir, *order_ids = journeys
    seen_types = set()
    for order_id in order_ids:
        shown = in_terminal(columns, "--data-dir", str(data_dir), "history", str(order_id))
        document = json.loads(
            in_terminal(columns, "--data-dir", str(data_dir), "history", str(order_id), "--json")
        )
        assert "\x1b" not in shown and "\u202e" not in shown and "\u200b" not in shown
        shown_lines = shown.splitlines()
        for event in document["events"]:
            seen_types.add(event["type"])
            head = f"version {event['version']}  {event['type']}  {event['timestamp']}"
            assert head in shown_lines, (head, shown)
            for text in leaves(event["payload"]) + leaves(event["changes"]):
                escaped = text.encode("unicode_escape").decode() if not text.isprintable() else text
                assert any(escaped in line for line in shown_lines), (text, columns, shown)
    assert seen_types == {
        "OrderPlaced",
        "OrderLinesChanged",
        "PaymentConfirmed",
        "OrderShipped",
        "OrderCompleted",
        "OrderCancelled",
    }


@pytest.mark.parametrize("columns", [80, 120])
def test_show_prints_stored_escape_sequences_escaped(
    journeys: tuple[Path, UUID, UUID], columns: int
) -> None:
    data_dir, completed, cancelled = journeys
    shown = in_terminal(columns, "--data-dir", str(data_dir), "show", str(completed))
    assert "\x1b" not in shown and "\u202e" not in shown and "\u200b" not in shown
    assert "2 x A\\x1b[2JB @ 12.50" in shown
    assert "1 x X\\u202eY\\u200bZ @ 3.25" in shown
    assert str(completed) in shown
    reason = in_terminal(columns, "--data-dir", str(data_dir), "show", str(cancelled))
    assert "changed their mind \\x1b[31mred\\x1b[0m" in reason
