"""Warm pools of the local run: which functions get how many execution environments, and the warm-up
event every handler answers at once."""

from __future__ import annotations

import json
from typing import Any

from infra.template_model import load_template
from infra.warmup import warm_pools, warm_up
from vid2mp3.warmup import WARM_UP_EVENT, is_warm_up, warmable


def test_the_http_functions_and_the_queue_consumers_get_pools():
    pools = warm_pools(load_template())
    # What a page (and a client uploading several files) sends at once, through the authorizer.
    assert pools["VideosFunction"] == 16 and pools["AuthorizerFunction"] == 16
    assert pools["UploadFunction"] >= 2
    assert pools["WebFunction"] >= 4 and pools["AuthFunction"] >= 1
    # Queue consumers: as many as the bridge invokes at once; the scheduled function none.
    assert pools["ConvertFunction"] == 2 and pools["NotifyFunction"] == 1
    assert "RedriveFunction" not in pools
    assert warm_pools(load_template(), cap=1) == {name: 1 for name in pools}
    assert warm_pools(load_template(), cap=0) == {}


def test_every_handler_answers_the_warm_up_event_without_running():
    ran: list[Any] = []
    handler = warmable(lambda event, context: ran.append(event) or {"ok": True})
    assert handler(dict(WARM_UP_EVENT), None) == {"warmed": True} and ran == []
    assert handler({"httpMethod": "GET"}, None) == {"ok": True} and len(ran) == 1
    assert not is_warm_up({"vid2mp3": "other"}) and not is_warm_up([]) and not is_warm_up(None)


def test_the_api_handlers_answer_it_too():
    from functions.auth import app as auth
    from functions.auth import authorizer

    assert auth.handler(dict(WARM_UP_EVENT), None) == {"warmed": True}
    assert authorizer.handler(dict(WARM_UP_EVENT), None) == {"warmed": True}


class FakeLambda:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def invoke(self, FunctionName: str, Payload: bytes) -> dict[str, Any]:
        self.calls.append(FunctionName)
        assert json.loads(Payload) == WARM_UP_EVENT

        class Body:
            def read(self) -> bytes:
                return b'{"warmed": true}'

        return {"Payload": Body()}


def test_warm_up_invokes_each_function_as_many_times_as_its_pool():
    lam = FakeLambda()
    warm_up(lam, {"UploadFunction": ("vid2mp3-Upload-1", 3), "WebFunction": ("vid2mp3-Web-2", 2)})
    assert sorted(lam.calls) == ["vid2mp3-Upload-1"] * 3 + ["vid2mp3-Web-2"] * 2
