"""The warm-up event: an invocation that only makes the execution environment (its cold start: the
code and layers unpacked, the modules imported), and does nothing else.

The local run sends it to every function a few times at once right after a deploy (infra/warmup.py), so
that the emulator, which runs every cold start on the developer's few cores, has execution environments
ready before the first burst of requests. Nothing on AWS sends it (there, cold starts run side by side on
separate machines; provisioned concurrency is the paid equivalent, deliberately not declared).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

WARM_UP_EVENT = {"vid2mp3": "warm-up"}

H = TypeVar("H", bound=Callable[[Any, Any], Any])


def is_warm_up(event: Any) -> bool:
    return isinstance(event, dict) and event.get("vid2mp3") == "warm-up"


def warmable(handler: H, prepare: Callable[[], None] | None = None) -> H:
    """`handler`, answering the warm-up event with {"warmed": true} and nothing else, after `prepare()`
    (building the function's dependencies, connecting): the first real request then finds them ready."""

    @functools.wraps(handler)
    def answer(event: Any, context: Any) -> Any:
        if is_warm_up(event):
            if prepare is not None:
                prepare()
            return {"warmed": True}
        return handler(event, context)

    return answer  # type: ignore[return-value]
