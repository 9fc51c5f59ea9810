"""`python -m infra <command>`: the developer commands behind the Makefile."""

from __future__ import annotations

import argparse
import json
import sys

from infra.local import STATE_DIR


def _redeploy() -> int:
    """Rebuild and update the stack of a running `make run`, without restarting anything."""
    from infra import build, deploy
    from infra.aws import CREDENTIALS, REGION

    runtime_file = STATE_DIR / "runtime.json"
    if not runtime_file.exists():
        print("error: no local run is active (start one with `make run`)", file=sys.stderr)
        return 1
    import os

    os.environ.update(CREDENTIALS)
    runtime = json.loads(runtime_file.read_text())
    built = build.build(STATE_DIR)
    deploy.deploy(built, runtime["parameters"], endpoint=runtime["endpoint"], stack_name=runtime["stack"],
                  region=REGION, cache=STATE_DIR / "build" / "zips")
    print(f"redeployed. API: {runtime['api_url']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start everything locally and print the API URL (make run)")
    sub.add_parser("build", help="build functions, layers and the deployable template")
    sub.add_parser("deploy", help="rebuild and redeploy into the running local emulator")
    args = parser.parse_args(argv)
    if args.command == "run":
        from infra.local import run

        return run()
    if args.command == "build":
        from infra.build import build

        print(f"built: {build(STATE_DIR)}")
        return 0
    return _redeploy()


if __name__ == "__main__":
    sys.exit(main())
