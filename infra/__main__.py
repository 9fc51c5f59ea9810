"""`python -m infra <command>`: the developer commands behind the Makefile."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from infra.local import STATE_DIR


def _redeploy() -> int:
    """Rebuild and update the stack of a running `make run`, without restarting anything."""
    from infra import build, deploy
    from infra.aws import CREDENTIALS, REGION

    runtime_file = STATE_DIR / "runtime.json"
    if not runtime_file.exists():
        print("error: no local run is active (start one with `make run`)", file=sys.stderr)
        return 1
    os.environ.update(CREDENTIALS)
    runtime = json.loads(runtime_file.read_text())
    built = build.build(STATE_DIR)
    deploy.deploy(built, runtime["parameters"], endpoint=runtime["endpoint"], stack_name=runtime["stack"],
                  region=REGION, cache=STATE_DIR / "build" / "zips")
    print(f"redeployed. API: {runtime['api_url']}")
    return 0


def _generate_event(args: argparse.Namespace) -> int:
    """`python -m infra generate-event`: the samples of infra.sample_events, for the stack's parameters."""
    from infra import invoke, sample_events
    from infra.local import jwt_secret
    from infra.template_model import TEMPLATE, load_template
    from vid2mp3.errors import AppError, ConfigError

    try:
        template = load_template(TEMPLATE)
        params = invoke.stack_parameters(STATE_DIR, invoke.parse_parameter_overrides(args.parameter_overrides))
        secret = params.get("JwtSecret") or jwt_secret(STATE_DIR, os.environ)
        samples = sample_events.samples(template, params, secret)
        if args.out:
            for sample in samples:
                path = args.out / sample.function / f"{sample.name}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(sample.event, indent=2) + "\n")
            print(f"wrote {len(samples)} events under {args.out}", file=sys.stderr)
            return 0
        if not args.function:
            for sample in samples:
                print(f"{sample.function} {sample.name}")
            return 0
        chosen = [s for s in samples if s.function == args.function and args.event in (None, s.name)]
        if not chosen:
            raise invoke.InvokeError(f"no sample {args.function} {args.event or ''}".strip()
                                     + " (list them with `python -m infra generate-event`)")
        event = chosen[0].event
        if args.video:
            built = STATE_DIR / "build"
            spec = invoke.function_spec(load_template(built / "template.yaml"), args.function, built, params)
            body = sample_events.stage_video(args.video, invoke.apply_env_vars(spec, {}, sys.stderr),
                                             ffprobe=str(built / "layers" / "ffmpeg" / "bin" / "ffprobe"))
            event = sample_events.rmq_with_body(event, body)
    except (invoke.InvokeError, OSError, ValueError, ConfigError, AppError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(event, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start everything locally and print the API URL (make run)")
    sub.add_parser("build", help="build functions, layers and the deployable template")
    sub.add_parser("deploy", help="rebuild and redeploy into the running local emulator")
    from infra import invoke

    invoke.add_arguments(sub.add_parser("invoke", help="run one function once with an event (sam local invoke)"))
    events = sub.add_parser("generate-event", help="print a sample event of a function (every one with --out)")
    events.add_argument("function", nargs="?", metavar="FUNCTION", help="logical id; omitted: list the samples")
    events.add_argument("event", nargs="?", metavar="EVENT", help="the template event's id (default: the first)")
    events.add_argument("--video", type=Path, help="store this video as an upload would, for the conversion event")
    events.add_argument("--out", type=Path, help="write every sample to OUT/<function>/<event>.json")
    events.add_argument("--parameter-overrides", nargs="+", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.command == "invoke":
        return invoke.command(args, STATE_DIR)
    if args.command == "generate-event":
        return _generate_event(args)
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
