"""JSON logs with a correlation id carried from request to queue to email (Powertools Logger)."""

from __future__ import annotations

from aws_lambda_powertools import Logger


def get_logger(service: str, level: str = "INFO") -> Logger:
    """One structured logger per function; call `logger.set_correlation_id(...)` per event."""
    return Logger(service=service, level=level, use_rfc3339=True)
