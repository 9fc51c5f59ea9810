"""Conversion metrics as CloudWatch embedded-metric-format lines (Powertools Metrics): on AWS, CloudWatch
turns each line of the function's log into metrics; locally the same JSON lines are in the emulator's log.

Namespace `vid2mp3`, dimension `service` = convert:

- ConversionsStarted (Count): a delivery began converting a job (redeliveries count again);
- ConversionsDone (Count): a job became done;
- ConversionsFailed (Count), with the dimension `reason` (the failure's code): a job became failed;
- ConversionSeconds (Seconds), BytesIn (Bytes, the video), BytesOut (Bytes, the MP3): per conversion run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

NAMESPACE = "vid2mp3"
SERVICE = "convert"


class ConversionMetrics(Protocol):
    def started(self) -> None: ...

    def converted(self, seconds: float, *, bytes_in: int, bytes_out: int) -> None: ...

    def done(self) -> None: ...

    def failed(self, reason: str) -> None: ...


class NoMetrics:
    """Nothing recorded (unit tests of other rules)."""

    def started(self) -> None:
        pass

    def converted(self, seconds: float, *, bytes_in: int, bytes_out: int) -> None:
        pass

    def done(self) -> None:
        pass

    def failed(self, reason: str) -> None:
        pass


@dataclass
class RecordedMetrics:
    """The fake: what was recorded, as (name, value, dimensions)."""

    records: list[tuple[str, float, dict[str, str]]] = field(default_factory=list)

    def started(self) -> None:
        self.records.append(("ConversionsStarted", 1, {}))

    def converted(self, seconds: float, *, bytes_in: int, bytes_out: int) -> None:
        self.records += [("ConversionSeconds", seconds, {}), ("BytesIn", bytes_in, {}), ("BytesOut", bytes_out, {})]

    def done(self) -> None:
        self.records.append(("ConversionsDone", 1, {}))

    def failed(self, reason: str) -> None:
        self.records.append(("ConversionsFailed", 1, {"reason": reason}))


class EmfMetrics:
    """One EMF line per event, printed at once (a conversion may be the invocation's last act)."""

    def __init__(self, namespace: str = NAMESPACE, service: str = SERVICE) -> None:
        self.namespace = namespace
        self.service = service

    def _emit(self, values: list[tuple[str, str, float]], dimensions: dict[str, str] | None = None) -> None:
        from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

        metrics = EphemeralMetrics(namespace=self.namespace, service=self.service)
        for dimension, label in (dimensions or {}).items():
            metrics.add_dimension(name=dimension, value=label)
        for name, unit, value in values:
            metrics.add_metric(name=name, unit=MetricUnit(unit), value=value)
        metrics.flush_metrics()

    def started(self) -> None:
        self._emit([("ConversionsStarted", "Count", 1)])

    def converted(self, seconds: float, *, bytes_in: int, bytes_out: int) -> None:
        self._emit([("ConversionSeconds", "Seconds", round(seconds, 3)), ("BytesIn", "Bytes", bytes_in),
                    ("BytesOut", "Bytes", bytes_out)])

    def done(self) -> None:
        self._emit([("ConversionsDone", "Count", 1)])

    def failed(self, reason: str) -> None:
        self._emit([("ConversionsFailed", "Count", 1)], {"reason": reason})
