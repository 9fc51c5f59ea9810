"""`python -m infra.k8s` (make k8s): write the generated manifests; `--check`: validate the overlays."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.k8s.images import stage_images
from infra.k8s.manifests import GENERATED, OVERLAYS, ROOT, image_for, render
from infra.k8s.validate import kustomize, validate
from infra.template_model import TEMPLATE, load_template


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.k8s")
    parser.add_argument("--check", action="store_true", help="validate each overlay instead of generating")
    parser.add_argument("--stage-images", type=Path, metavar="OUT",
                        help="write a Docker build context per function image under OUT (after `make build`)")
    args = parser.parse_args(argv)
    if args.stage_images:
        for context in stage_images(ROOT / ".vid2mp3" / "build" / "template.yaml", args.stage_images):
            print(f"{image_for(context.name)}: {context}")
        return 0
    if not args.check:
        GENERATED.write_text(render(load_template(TEMPLATE)))
        print(f"wrote {GENERATED.relative_to(ROOT)}")
        return 0
    failed = False
    for overlay in OVERLAYS:
        docs = kustomize(overlay)
        problems = validate(docs)
        for problem in problems:
            print(f"{overlay}: {problem}", file=sys.stderr)
        failed = failed or bool(problems)
        print(f"{overlay}: {len(docs)} objects, {'INVALID' if problems else 'valid (strict)'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
