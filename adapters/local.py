"""The embedded local backend: zero set-up, no AWS account, no server.

Events go to the ``eventsourcing`` SQLite recorder in one file under a data directory, so what a
run stored is there for the next run.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_VARIABLE = "ORDERS_DATA_DIR"
EVENTS_FILE_NAME = "events.sqlite3"


def default_data_dir() -> Path:
    """``$ORDERS_DATA_DIR``, else ``$XDG_DATA_HOME/eventsourced-orders`` (``~/.local/share``)."""
    if configured := os.environ.get(DATA_DIR_VARIABLE):
        return Path(configured)
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "eventsourced-orders"


def local_env(data_dir: Path) -> dict[str, str]:
    """Application settings that store events in ``data_dir`` (created if missing)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(data_dir / EVENTS_FILE_NAME),
        "SQLITE_LOCK_TIMEOUT": "10",
    }
