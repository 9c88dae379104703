"""The transport-free consumer runtime: a message body in, validated envelope, handlers called.

A *handler* is a function of one validated envelope (``Callable[[envelope], None]``); raising
fails the message, which the transport retries and, after its receives run out, dead-letters.
:class:`Dispatcher` is the *record handler* every transport shares (the SQS worker, the Lambda
batch handler, the local in-process bus): it parses a body with :func:`parse_envelope` and calls
the handlers routed to its ``detail-type``, in the order given.

A body that can never be handled as it is (not JSON, nested too deep to parse, schema-invalid, a
``detail-type`` the contract does not know) raises :class:`PoisonMessageError` naming the
problem, and so does an envelope a handler found forged
(``projections.downstream.ForgedEnvelopeError``); a handler's other errors propagate unchanged.
A valid envelope with no handler routed to it is acknowledged and ignored (the queue's rule sent
more than this consumer needs).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from projections.downstream import ForgedEnvelopeError
from schemas.contract import ENVELOPE, ENVELOPE_TYPES, Envelope, EnvelopeBase
from schemas.payments import PAYMENT_ENVELOPE, PAYMENT_ENVELOPE_TYPES, PaymentEnvelope

logger = logging.getLogger(__name__)

AnyEnvelope = Envelope | PaymentEnvelope
"""Every envelope a consumer may receive: the order service's and the payment service's."""

Handler = Callable[[Any], None]
"""A function of one validated envelope; raising fails the message."""


def _detail_type(model: type[EnvelopeBase]) -> str:
    literal: str = model.model_fields["detail_type"].annotation.__args__[0]  # type: ignore[union-attr]
    return literal


ORDER_DETAIL_TYPES = frozenset(_detail_type(model) for model in ENVELOPE_TYPES)
PAYMENT_DETAIL_TYPES = frozenset(_detail_type(model) for model in PAYMENT_ENVELOPE_TYPES)
KNOWN_DETAIL_TYPES = ORDER_DETAIL_TYPES | PAYMENT_DETAIL_TYPES


class PoisonMessageError(ValueError):
    """A message body that no retry can make valid; ``reason`` names what is wrong with it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_envelope(body: str | bytes) -> AnyEnvelope:
    """The validated envelope ``body`` holds, or :class:`PoisonMessageError` saying why not.

    Numbers are read as ``Decimal`` with their exact digits, never through a binary float.
    """
    try:
        document = json.loads(body, parse_float=Decimal)
    except ValueError as error:
        msg = f"body is not JSON: {error}"
        raise PoisonMessageError(msg) from None
    except RecursionError:
        msg = "body is nested too deep to parse"
        raise PoisonMessageError(msg) from None
    if not isinstance(document, dict):
        msg = f"body is a JSON {type(document).__name__}, not an envelope object"
        raise PoisonMessageError(msg)
    detail_type = document.get("detail-type")
    if detail_type not in KNOWN_DETAIL_TYPES:
        msg = (
            f"unknown detail-type {detail_type!r} (known: {', '.join(sorted(KNOWN_DETAIL_TYPES))})"
        )
        raise PoisonMessageError(msg)
    try:
        if detail_type in ORDER_DETAIL_TYPES:
            return ENVELOPE.validate_python(document)
        return PAYMENT_ENVELOPE.validate_python(document)
    except ValidationError as error:
        raise PoisonMessageError(f"{detail_type} envelope {_summary(error)}") from None
    except RecursionError:
        msg = f"{detail_type} envelope is nested too deep to validate"
        raise PoisonMessageError(msg) from None


def failure_reason(error: Exception) -> str:
    """One line naming why a message failed, for logs and the dead-letter queue."""
    if isinstance(error, PoisonMessageError):
        return f"poison message: {error.reason}"
    return f"{type(error).__name__}: {error}"


def _summary(error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in problem['loc']) or '(root)'}: {problem['msg']}"
        for problem in error.errors(include_url=False)
    ]
    shown = "; ".join(problems[:3])
    more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
    return f"fails the contract: {shown}{more}"


class Dispatcher:
    """The record handler: parse a body, then call each handler routed to its detail-type."""

    def __init__(self, routes: Iterable[tuple[Iterable[str], Handler]]) -> None:
        self.routes: dict[str, list[Handler]] = {}
        for detail_types, handler in routes:
            for detail_type in detail_types:
                if detail_type not in KNOWN_DETAIL_TYPES:
                    msg = f"cannot route unknown detail-type {detail_type!r}"
                    raise ValueError(msg)
                self.routes.setdefault(detail_type, []).append(handler)

    def __call__(self, body: str | bytes) -> None:
        """Handle one message body; raises what the parse or a handler raised."""
        self.handle(parse_envelope(body))

    def handle(self, envelope: AnyEnvelope) -> None:
        """Call every handler routed to the envelope's detail-type, in order; a forged
        envelope raises :class:`PoisonMessageError` with the handler's reason."""
        for handler in self.routes.get(envelope.detail_type, ()):
            try:
                handler(envelope)
            except ForgedEnvelopeError as error:
                raise PoisonMessageError(f"forged envelope: {error.reason}") from error
