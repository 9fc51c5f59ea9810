"""The message-publishing port: persistent messages with publisher confirms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Publisher(Protocol):
    def publish(self, queue: str, body: Mapping[str, Any], *, correlation_id: str) -> None:
        """Publish one persistent JSON message; returns only once the broker confirmed it.

        Raises DependencyUnavailable when the broker cannot be reached or does not confirm.
        """

    def ping(self) -> None:
        """Raise DependencyUnavailable unless the broker answers."""
