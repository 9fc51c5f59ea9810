"""Build the function and layer artifacts from the repository, and the template that points at them.

The built artifact, not the developer's venv, is what runs: each function directory holds its own
entry points plus the shared `vid2mp3` package; third-party packages live in the dependencies layer,
installed for Lambda's platform (manylinux x86_64, CPython 3.11) from pyproject.toml's dependencies.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from infra.template_model import TEMPLATE, functions, load_template

ROOT = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "3.11"
PLATFORM = "manylinux2014_x86_64"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")


def requirement_name(requirement: str) -> str:
    """The distribution a requirement names, normalised as PEP 503 does ("Foo_Bar[x]>=1" -> "foo-bar")."""
    name = re.split(r"[\s\[<>=!~;@(]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _tool_names(data: dict[str, Any], key: str, dependencies: list[str]) -> set[str]:
    names = {requirement_name(n) for n in data.get("tool", {}).get("vid2mp3", {}).get(key, [])}
    unknown = names - {requirement_name(d) for d in dependencies}
    if unknown:
        raise ValueError(f"[tool.vid2mp3] {key} names what is not a dependency: {', '.join(sorted(unknown))}")
    return names


def runtime_requirements(pyproject: Path = ROOT / "pyproject.toml") -> tuple[list[str], list[str]]:
    """What the functions need at run time: pyproject's dependencies less those only the command line
    uses (`[tool.vid2mp3] cli-only`), which would only cost the layer size and cold-start time. As two
    lists: those installed with their dependencies, and those installed without
    (`layer-without-dependencies`: a package whose dependencies serve only its own command line)."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    dependencies: list[str] = list(data["project"]["dependencies"])
    cli_only = _tool_names(data, "cli-only", dependencies)
    bare = _tool_names(data, "layer-without-dependencies", dependencies)
    runtime = [d for d in dependencies if requirement_name(d) not in cli_only]
    return ([d for d in runtime if requirement_name(d) not in bare],
            [d for d in runtime if requirement_name(d) in bare])


def _pip_install(target: Path, cache: Path, requirements: list[str], *extra: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-qq", "--disable-pip-version-check", "--no-warn-conflicts",
         "--target", str(target), "--platform", PLATFORM, "--implementation", "cp",
         "--python-version", PYTHON_VERSION, "--only-binary=:all:", "--cache-dir", str(cache / "pip"),
         *extra, *requirements],
        check=True,
    )


def build_dependencies_layer(out: Path, cache: Path) -> Path:
    """pip-install the runtime dependencies into `<out>/python` (skipped when unchanged)."""
    requirements, bare = runtime_requirements()
    key = hashlib.sha256(json.dumps([requirements, bare, PLATFORM, PYTHON_VERSION]).encode()).hexdigest()
    marker = out / ".build-key"
    if marker.exists() and marker.read_text() == key:
        return out
    print("building the dependencies layer (pip, manylinux x86_64, CPython 3.11) ...", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    target = out / "python"
    target.mkdir(parents=True)
    _pip_install(target, cache, requirements)
    if bare:
        _pip_install(target, cache, bare, "--no-deps")
    for pycache in target.rglob("__pycache__"):
        shutil.rmtree(pycache, ignore_errors=True)
    marker.write_text(key)
    return out


# What Lambda's Python runtime itself provides to every function (in /var/runtime, after the layers on
# sys.path): the AWS SDK. Not deployed (Lambda has it); `python -m infra invoke` puts it where Lambda does.
RUNTIME_SDK = ["boto3>=1.34,<2"]
RUNTIME_DIR = "runtime"  # beside the built template


def build_runtime_sdk(out: Path, cache: Path) -> Path:
    """pip-install the runtime's own packages (the AWS SDK) into `out` (skipped when unchanged)."""
    key = hashlib.sha256(json.dumps([RUNTIME_SDK, PLATFORM, PYTHON_VERSION]).encode()).hexdigest()
    marker = out / ".build-key"
    if marker.exists() and marker.read_text() == key:
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _pip_install(out, cache, RUNTIME_SDK)
    marker.write_text(key)
    return out


def build_ffprobe_layer(out: Path, ffmpeg_layer: Path) -> Path:
    """The ffprobe layer: the ffmpeg layer's ffprobe alone (the upload function probes, it never encodes:
    half the bytes a worker unpacks). Hard-linked from the built ffmpeg layer, same bytes and mode."""
    build_ffmpeg_layer(ffmpeg_layer)
    source = ffmpeg_layer / "bin" / "ffprobe"
    target = out / "bin" / "ffprobe"
    if target.exists() and target.stat().st_ino == source.stat().st_ino:
        return out
    shutil.rmtree(out, ignore_errors=True)
    target.parent.mkdir(parents=True)
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)
    return out


def build_ffmpeg_layer(out: Path) -> Path:
    script = ROOT / "layers" / "ffmpeg" / "build.py"
    subprocess.run([sys.executable, str(script), "--out", str(out)], check=True)
    return out


def _shared_package_files(directory: str, names: list[str]) -> set[str]:
    """What of the shared package a function does not ship: caches, and the command line (vid2mp3/cli)."""
    ignored = set(_IGNORE(directory, names))
    if Path(directory) == ROOT / "vid2mp3":
        ignored.add("cli")
    return ignored


def build_function(source: Path, out: Path) -> Path:
    """The function's own files plus the shared package (less the command line), nothing else."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(source, out, ignore=_IGNORE)
    shutil.copytree(ROOT / "vid2mp3", out / "vid2mp3", ignore=_shared_package_files)
    return out


def _local_path(uri: Any) -> Path | None:
    if isinstance(uri, str) and not uri.startswith("s3://"):
        return (TEMPLATE.parent / uri).resolve()
    return None


def build(state_dir: Path, *, template_path: Path = TEMPLATE) -> Path:
    """Build every artifact the template names; returns the path of the built template."""
    out = state_dir / "build"
    template = load_template(template_path)
    resources: dict[str, Any] = template["Resources"]
    for logical_id, resource in resources.items():
        props = resource.get("Properties") or {}
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            source = _local_path(props.get("ContentUri"))
            if source is None:
                continue
            if source.name == "dependencies":
                built = build_dependencies_layer(out / "layers" / "dependencies", state_dir / "cache")
            elif source.name == "ffmpeg":
                built = build_ffmpeg_layer(out / "layers" / "ffmpeg")
            elif source.name == "ffprobe":
                built = build_ffprobe_layer(out / "layers" / "ffprobe", out / "layers" / "ffmpeg")
            else:
                raise ValueError(f"{logical_id}: no build rule for layer {source.name}")
            props["ContentUri"] = str(built)
            (resource.get("Metadata") or {}).pop("BuildMethod", None)
        elif logical_id in functions(template):
            source = _local_path(props.get("CodeUri"))
            if source is not None:
                props["CodeUri"] = str(build_function(source, out / "functions" / source.name))
    build_runtime_sdk(out / RUNTIME_DIR, state_dir / "cache")
    built_template = out / "template.yaml"
    built_template.write_text(yaml.safe_dump(template, sort_keys=False), encoding="utf-8")
    return built_template


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Build the functions, layers and template into .vid2mp3/build")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".vid2mp3")
    args = parser.parse_args(argv)
    print(f"built: {build(args.state_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
