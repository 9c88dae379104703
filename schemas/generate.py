"""Write the JSON Schema files of the contract into ``schemas/``: ``python -m schemas.generate``.

The files are checked in; ``tests/unit/test_schemas.py`` fails when they drift from the models.
One file per detail-type (``<DetailType>.schema.json``) and ``envelope.schema.json`` for any.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

from schemas.contract import ENVELOPE, ENVELOPE_TYPES
from schemas.payments import PAYMENT_ENVELOPE_TYPES

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = Path(__file__).resolve().parent


def _as_file(schema: dict[str, Any]) -> str:
    return json.dumps({"$schema": SCHEMA_DIALECT, **schema}, indent=2, sort_keys=True) + "\n"


def rendered_schemas() -> dict[str, str]:
    """The text of every schema file, by file name."""
    files = {"envelope.schema.json": _as_file(ENVELOPE.json_schema(by_alias=True))}
    for envelope_type in ENVELOPE_TYPES + PAYMENT_ENVELOPE_TYPES:
        (detail_type,) = get_args(envelope_type.model_fields["detail_type"].annotation)
        schema = envelope_type.model_json_schema(by_alias=True)
        files[f"{detail_type}.schema.json"] = _as_file(schema)
    return files


def main() -> None:
    """Write every schema file and remove none; print what was written."""
    for name, text in rendered_schemas().items():
        (SCHEMA_DIR / name).write_text(text)
        print(f"wrote schemas/{name}")


if __name__ == "__main__":
    main()
