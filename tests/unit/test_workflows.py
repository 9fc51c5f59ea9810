"""The GitHub Actions workflows cannot run here; what they name in this repository must exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _runs(workflow: Path) -> str:
    data = yaml.safe_load(workflow.read_text())
    return "\n".join(step.get("run", "") for job in data["jobs"].values() for step in job.get("steps", []))


def test_workflows_reference_files_targets_and_modules_that_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*[:?]?=\s*(.*)$", makefile, re.MULTILINE))
    for _ in range(3):  # $(STAMP) -> $(VENV)/.installed -> .venv/.installed
        makefile = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), makefile)
    targets = set(re.findall(r"^([\w./-]+):", makefile, re.MULTILINE))
    checked = 0
    for workflow in WORKFLOWS:
        runs = _runs(workflow)
        for path in re.findall(r"(?<![\w./-])((?:deploy|infra|layers|tests|bench)/[\w./-]+)", runs):
            assert (ROOT / path).exists(), f"{workflow.name}: {path} does not exist"
            checked += 1
        for target in re.findall(r"\bmake\s+([\w./-]+)", runs):
            assert target in targets, f"{workflow.name}: make {target} is not a Makefile target"
            checked += 1
        for module in re.findall(r"python -m ([\w.]+)", runs):
            assert importlib.util.find_spec(module) is not None, f"{workflow.name}: no module {module}"
            checked += 1
    assert checked > 20


def test_the_release_deploys_every_required_template_parameter() -> None:
    from infra.template_model import load_template

    release = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    required = [k for k, v in load_template()["Parameters"].items() if "Default" not in v]
    assert required and all(f'"{k}=' in release for k in required)
    assert "id-token: write" in release and "vid2mp3.db.migrate" in release
    assert release.index("-m vid2mp3.db.migrate") < release.index("bin/sam deploy")  # migrations first


def test_every_local_action_and_called_workflow_exists() -> None:
    for workflow in WORKFLOWS:
        for job in yaml.safe_load(workflow.read_text())["jobs"].values():
            uses = job.get("uses", "")
            if uses.startswith("./"):
                assert (ROOT / uses).exists(), uses
