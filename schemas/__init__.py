"""The public contract of the order service: envelope models, JSON Schema files, the mapping.

``to_envelope(event)`` is the only place that turns a stored order event into what is
published; ``to_json`` writes an envelope (amounts as exact JSON numbers); ``parse_envelope``
and ``ENVELOPE`` read and validate one; ``python -m schemas.generate`` rewrites the checked-in
``*.schema.json`` files from the models.
"""

from schemas.contract import ENVELOPE, ENVELOPE_TYPES, Envelope, parse_envelope, to_json
from schemas.mapping import event_id, to_envelope

__all__ = [
    "ENVELOPE",
    "ENVELOPE_TYPES",
    "Envelope",
    "event_id",
    "parse_envelope",
    "to_envelope",
    "to_json",
]
