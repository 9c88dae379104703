"""The public contract of the order service: envelope models, JSON Schema files, the mapping.

``to_envelope(event)`` is the only place that turns a stored order event into what is
published; ``ENVELOPE`` validates any published envelope; ``python -m schemas.generate``
rewrites the checked-in ``*.schema.json`` files from the models.
"""

from schemas.contract import ENVELOPE, ENVELOPE_TYPES, Envelope
from schemas.mapping import event_id, to_envelope

__all__ = ["ENVELOPE", "ENVELOPE_TYPES", "Envelope", "event_id", "to_envelope"]
