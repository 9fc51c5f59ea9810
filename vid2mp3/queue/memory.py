"""In-memory publisher for unit tests: records what would have been published."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vid2mp3.errors import DependencyUnavailable


@dataclass
class PublishedMessage:
    queue: str
    body: dict[str, Any]
    correlation_id: str


@dataclass
class InMemoryPublisher:
    messages: list[PublishedMessage] = field(default_factory=list)
    available: bool = True

    def publish(self, queue: str, body: Mapping[str, Any], *, correlation_id: str) -> None:
        if not self.available:
            raise DependencyUnavailable("The message broker is unavailable.")
        self.messages.append(PublishedMessage(queue, dict(body), correlation_id))

    def ping(self) -> None:
        if not self.available:
            raise DependencyUnavailable("The message broker is unavailable.")
