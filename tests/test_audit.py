"""The audit trail: each event's payload and state diff, from Python and from ``orders history``."""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.local.backend import local_env
from orders import AuditEntry, OrderEvent, OrderLine, OrderService
from orders.audit import STATE_FIELDS, jsonable, order_state

ORDER = UUID("00000000-0000-4000-8000-000000000050")


def order_of_50_events(data_dir: Path) -> OrderService:
    """An order placed, its lines changed 46 times, paid, shipped and completed."""
    service = OrderService(env=local_env(data_dir))
    service.place_order("c-1", [OrderLine("A", 1, Decimal("1.10"))], "EUR", order_id=ORDER)
    for quantity in range(2, 48):
        lines = [
            OrderLine("A", quantity, Decimal("1.10")),
            OrderLine(f"B{quantity % 3}", 1, Decimal(2)),
        ]
        service.change_lines(ORDER, lines, correlation_id=f"change-{quantity}")
    total = service.get_order(ORDER).total
    service.confirm_payment(ORDER, "pay-1", total, causation_id="payment-message-1")
    service.ship(ORDER)
    service.complete(ORDER)
    return service


def record_time(event: object) -> datetime:
    assert isinstance(event, OrderEvent)
    return event.timestamp


def test_audit_matches_the_stored_events_and_the_states_between_them(tmp_path: Path) -> None:
    service = order_of_50_events(tmp_path)
    entries = service.audit(ORDER)
    stored = service.recorder.select_events(ORDER)
    assert len(entries) == len(stored) == 50

    previous_state: dict[str, object] = {}
    for entry, record in zip(entries, stored, strict=True):
        event = service.mapper.to_domain_event(record)
        assert entry.version == record.originator_version == event.originator_version
        assert entry.type_name == record.topic.partition(":")[2]
        assert entry.timestamp == record_time(event).isoformat()
        recorded = service.mapper.transcoder.decode(record.state)
        for metadata in ("timestamp", "class_version", "originator_topic"):
            recorded.pop(metadata, None)
        assert entry.payload == {name: jsonable(value) for name, value in recorded.items()}

        state = order_state(service.get_order(ORDER, version=entry.version))
        assert entry.state == state
        assert entry.changes == {
            name: {"before": previous_state.get(name), "after": state[name]}
            for name in STATE_FIELDS
            if previous_state.get(name) != state[name]
        }
        previous_state = state

    assert entries[-2].changes == {
        "state": {"before": "paid", "after": "shipped"},
    }
    assert entries[-3].payload["causation_id"] == "payment-message-1"
    assert entries[5].changes["total"] == {"before": "7.50", "after": "8.60"}


def test_history_jsonl_and_json_round_trip(tmp_path: Path) -> None:
    service = order_of_50_events(tmp_path)
    runner = CliRunner()
    arguments = ["--data-dir", str(tmp_path), "history", str(ORDER)]

    jsonl = runner.invoke(app, [*arguments, "--jsonl"])
    assert jsonl.exit_code == 0, jsonl.output
    lines = jsonl.stdout.splitlines()
    assert len(lines) == 50
    read_back = [AuditEntry.from_json(line) for line in lines]
    assert read_back == service.audit(ORDER)

    document = json.loads(runner.invoke(app, [*arguments, "--json"]).stdout)
    assert document == {"order_id": str(ORDER), "events": [json.loads(line) for line in lines]}

    table = runner.invoke(app, arguments).stdout
    assert table.count("OrderLinesChanged") == 46
    assert re.search(r"^  changed state +paid -> shipped$", table, re.M), table
