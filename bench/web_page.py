"""The web function's cold start against the upload function's, and what loading the page costs.

    python bench/web_page.py [--runs N]

Each cold start is a fresh interpreter that sees only a function's built artifact and the dependencies
layer (as Lambda's init does), imports the handler and answers one request: GET / for the web function,
and for the upload function the import alone (its first request would add connections to three
services, so the ratio printed is the least the page saves). Also prints the bytes of a first visit and
of a second one (the page revalidated, its versioned files from the cache). Builds the artifacts first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.build import build  # noqa: E402
from vid2mp3.web import Site  # noqa: E402

PAGE_REQUEST = """
event = {'resource': '/', 'path': '/', 'httpMethod': 'GET', 'headers': {}, 'multiValueHeaders': {},
         'queryStringParameters': None, 'multiValueQueryStringParameters': None, 'pathParameters': None,
         'stageVariables': None, 'body': None, 'isBase64Encoded': False,
         'requestContext': {'resourcePath': '/', 'httpMethod': 'GET', 'path': '/v1/', 'stage': 'v1'}}
assert app.handler(event, None)['statusCode'] == 200
"""


def cold_start(function_dir: Path, layer: Path, then: str = "") -> float:
    code = f"import sys; sys.path[:0] = [{str(function_dir)!r}, {str(layer)!r}]\nimport app\n{then}"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code], check=True, env={"PATH": "/usr/bin:/bin"},
                   timeout=120)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    built = build(ROOT / ".vid2mp3").parent
    layer = built / "layers" / "dependencies" / "python"
    web, upload = built / "functions" / "web", built / "functions" / "upload"
    baseline = statistics.median(cold_start(upload, layer) for _ in range(args.runs))
    page = statistics.median(cold_start(web, layer, PAGE_REQUEST) for _ in range(args.runs))
    print(f"cold start, median of {args.runs}: web function import + GET / {page * 1000:.0f} ms, "
          f"upload function import alone {baseline * 1000:.0f} ms: ratio {page / baseline:.2f}")

    site = Site(web / "static")  # the built web function's files
    index = site.index.body.encode()
    first = len(index) + sum(len(a.body.encode()) for a in site.assets.values() if not a.name.endswith(
        (".map", ".txt")))
    print(json.dumps({"first visit bytes (page, script, style, icon, tus-js-client)": first,
                      "second visit bytes (the page; its files are immutable in the cache)": len(index)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
