"""The sandbox side of `python -m infra invoke`: runs one handler once, as Lambda's Python runtime does.

Started by infra/invoke.py as `python -I -S -B lambda_runtime.py` (standard library only: no
site-packages, no user site, no PYTHONPATH), with `sys.path` set here to what Lambda's python3.11 runtime
has: the function's code (LAMBDA_TASK_ROOT), then each layer's `python/` under the sandbox's /opt
(`/opt/python/lib/python3.11/site-packages`, `/opt/python`), then what the runtime ships itself (the
AWS SDK, /var/runtime on Lambda; built by infra/build.py, never deployed). The handler's stdout goes to the logs
(stderr), as on Lambda, so the result travels on its own channel: a file named by `_VID2MP3_RESULT`.

The result file holds the handler's JSON result, or Lambda's error payload (`errorMessage`,
`errorType`, `requestId`, `stackTrace`) with exit status 1, as the Python runtime reports an exception.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any

RESULT_ENV = "_VID2MP3_RESULT"
EVENT_ENV = "_VID2MP3_EVENT"
DEADLINE_ENV = "_VID2MP3_DEADLINE_MS"
REQUEST_ID_ENV = "_VID2MP3_REQUEST_ID"


class LambdaContext:
    """The context object of the Python runtime (the attributes and method Lambda documents)."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = (
            f"arn:aws:lambda:{env.get('AWS_REGION', 'us-east-1')}:123456789012:function:{self.function_name}"
        )
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = request_id
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
    }


def main() -> int:
    env = os.environ
    task_root = env["LAMBDA_TASK_ROOT"]
    opt = env["_VID2MP3_OPT"]
    sys.path[:0] = [task_root, os.path.join(opt, "python", "lib", "python3.11", "site-packages"),
                    os.path.join(opt, "python")]
    if env.get("_VID2MP3_RUNTIME_SDK"):  # /var/runtime: the SDK the runtime ships (boto3), after the layers
        sys.path.insert(3, env["_VID2MP3_RUNTIME_SDK"])
    os.chdir(task_root)
    sys.stdout = sys.stderr  # the function's prints are logs; the result has its own channel
    request_id = env[REQUEST_ID_ENV]
    result_path = env[RESULT_ENV]
    with open(env[EVENT_ENV], encoding="utf-8") as f:
        event = json.load(f)
    context = LambdaContext(request_id, int(env[DEADLINE_ENV]))
    module_name, _, attr = env["_HANDLER"].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), attr)
        result = handler(event, context)
        payload = json.dumps(result)
    except Exception as exc:
        error = _error_payload(exc, request_id)
        # What the Python runtime logs for an unhandled exception.
        print(f"[ERROR] {error['errorType']}: {error['errorMessage']}\nTraceback (most recent call last):\n"
              + "".join(error["stackTrace"]), file=sys.stderr, flush=True)
        with open(result_path, "w", encoding="utf-8") as f:
            json.dump(error, f)
        return 1
    with open(result_path, "w", encoding="utf-8") as f:
        f.write(payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
