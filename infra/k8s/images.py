"""Docker build contexts of the function images, from the built artifact."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from infra.template_model import functions, load_template


def stage_images(built_template: Path, out: Path) -> list[Path]:
    """One Docker build context per code directory of the built template (deploy/docker/function.Dockerfile):
    `task/` (the function's built code, LAMBDA_TASK_ROOT) and `opt/` (the layers of every function sharing
    that code, merged in order as Lambda extracts them into /opt). Files are hard-linked where possible."""
    from infra.invoke import function_layers

    template = load_template(built_template)
    contexts: dict[Path, list[Path]] = {}
    for logical_id, resource in functions(template).items():
        code = (built_template.parent / str(resource["Properties"]["CodeUri"])).resolve()
        layers = contexts.setdefault(code, [])
        layers += [p for p in function_layers(template, logical_id, built_template.parent) if p not in layers]

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    made = []
    for code, layers in contexts.items():
        context = out / code.name
        shutil.rmtree(context, ignore_errors=True)
        shutil.copytree(code, context / "task", copy_function=link)
        (context / "opt").mkdir(parents=True)
        for layer in layers:
            shutil.copytree(layer, context / "opt", dirs_exist_ok=True, copy_function=link,
                            ignore=shutil.ignore_patterns(".build-key"))
        made.append(context)
    return made
