"""Logging as it was: for tests that run code configuring Lambda's JSON logs."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from adapters.observability import telemetry
from adapters.observability.telemetry import OUR_PACKAGES, SERVICE_NAME, lambda_json_logs


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """Our packages' loggers restored after the block (Lambda handlers reconfigure them);
    ``orders`` is Powertools' own logger (the service's name), which Powertools leaves alone."""
    saved = {
        name: (logger.handlers[:], logger.propagate, logger.level)
        for name in OUR_PACKAGES - {SERVICE_NAME}
        for logger in [logging.getLogger(name)]
    }
    lambda_json_logs.cache_clear()
    try:
        yield
    finally:
        lambda_json_logs.cache_clear()
        telemetry._log_stream[0] = sys.stderr
        for name, (handlers, propagate, level) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
