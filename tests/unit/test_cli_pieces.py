"""The command line's parts: where the API is, downloads that follow a redirect without the token, safe
file names, and the build that keeps the command line's libraries out of the functions' layer."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from infra import build
from tests.support.fake_api import API, STORAGE, FakeApi
from vid2mp3.cli.api import Api
from vid2mp3.cli.config import resolve_api_url
from vid2mp3.cli.download import Progress, download_mp3, filename_from, free_path
from vid2mp3.cli.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def test_api_url_from_the_flag_then_the_environment_then_the_local_run_upwards(tmp_path):
    (tmp_path / ".vid2mp3").mkdir()
    (tmp_path / ".vid2mp3" / "api-url").write_text("http://127.0.0.1:4566/_aws/execute-api/abc/v1\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    env = {"VID2MP3_API": "https://api.example.com/v1/"}
    assert resolve_api_url("http://given/v1", env, deep).url == "http://given/v1"
    assert resolve_api_url(None, env, deep).url == "https://api.example.com/v1"
    found = resolve_api_url(None, {}, deep)
    assert found.url == "http://127.0.0.1:4566/_aws/execute-api/abc/v1" and found.local_run
    with pytest.raises(UsageError):
        resolve_api_url(None, {}, Path("/"))
    with pytest.raises(UsageError, match="http"):
        resolve_api_url("ftp://x", {}, deep)


def _fake_with_done_job(mp3_bytes: int) -> tuple[FakeApi, str, str]:
    fake = FakeApi(mp3_bytes=mp3_bytes)
    fake.tokens["t"] = "alice@example.com"
    fake.jobs["j1"] = {"id": "j1", "owner": "alice@example.com", "status": "done", "filename": "Été/../holiday.mp4"}
    return fake, "t", "j1"


@pytest.mark.parametrize("mp3_bytes", [600, 5000])  # inline, and redirected to storage
def test_download_writes_the_mp3_and_never_sends_the_token_to_storage(tmp_path, mp3_bytes):
    fake, token, job_id = _fake_with_done_job(mp3_bytes)
    with Api(API, token=token, transport=fake.transport) as api:
        saved = download_mp3(api, job_id, lambda name: tmp_path / name, Progress())
    assert saved.path == tmp_path / "holiday.mp3" and saved.size == mp3_bytes
    assert saved.path.read_bytes() == fake.mp3_of(job_id)
    for request in fake.requests:
        is_storage = str(request.url).startswith(STORAGE)
        assert ("Authorization" in request.headers) != is_storage, request.url
    assert any(str(r.url).startswith(STORAGE) for r in fake.requests) == (mp3_bytes > 1000)
    assert not list(tmp_path.glob(".*.part"))


@pytest.mark.parametrize(("disposition", "name"), [
    ("attachment; filename=\"clip.mp3\"", "clip.mp3"),
    ("attachment; filename=\"x.mp3\"; filename*=UTF-8''%C3%89t%C3%A9%20%C3%A0%20Paris.mp3", "Été à Paris.mp3"),
    ("attachment; filename=\"../../etc/passwd\"", "passwd"),
    ("attachment; filename=\"..\\\\..\\\\win.mp3\"", "win.mp3"),
    ("attachment; filename=\".hidden.mp3\"", "hidden.mp3"),
    (None, "fallback.mp3"),
    ("attachment", "fallback.mp3"),
])
def test_the_served_file_name_is_reduced_to_a_bare_name(disposition, name):
    assert filename_from(disposition, fallback="fallback.mp3") == name


def test_free_path_never_takes_an_existing_file(tmp_path):
    assert free_path(tmp_path, "a.mp3") == tmp_path / "a.mp3"
    (tmp_path / "a.mp3").touch()
    (tmp_path / "a (2).mp3").touch()
    assert free_path(tmp_path, "a.mp3") == tmp_path / "a (3).mp3"


# --- the build leaves the command line out of the functions ------------------------------------------


def test_the_dependencies_layer_gets_every_dependency_but_the_cli_only_ones():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    cli_only = data["tool"]["vid2mp3"]["cli-only"]
    with_deps, without_deps = build.runtime_requirements()
    names = {build.requirement_name(r) for r in [*with_deps, *without_deps]}
    assert {"httpx", "rich", "platformdirs"} <= set(cli_only)
    assert not names & set(cli_only)
    assert names == {build.requirement_name(d) for d in data["project"]["dependencies"]} - set(cli_only)
    assert {"psycopg", "pymongo", "pika"} <= {build.requirement_name(r) for r in with_deps}
    # chalice's own dependencies are its command line's: the layer takes the package alone
    assert {build.requirement_name(r) for r in without_deps} == {"chalice"}


def test_a_cli_only_name_that_is_not_a_dependency_is_an_error(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["httpx>=0.28", "Rich_Text[x]==1"]\n'
                         '[tool.vid2mp3]\ncli-only = ["rich-text", "httpcore"]\n')
    with pytest.raises(ValueError, match="httpcore"):
        build.runtime_requirements(pyproject)
    pyproject.write_text('[project]\ndependencies = ["httpx>=0.28", "Rich_Text[x]==1"]\n'
                         '[tool.vid2mp3]\ncli-only = ["rich.text"]\n')
    assert build.runtime_requirements(pyproject) == (["httpx>=0.28"], [])
    pyproject.write_text('[project]\ndependencies = ["httpx>=0.28", "chalice>=1"]\n'
                         '[tool.vid2mp3]\nlayer-without-dependencies = ["chalice", "flask"]\n')
    with pytest.raises(ValueError, match="flask"):
        build.runtime_requirements(pyproject)


def test_a_built_function_carries_the_shared_package_without_the_command_line(tmp_path):
    out = build.build_function(ROOT / "functions" / "upload", tmp_path / "upload")
    assert (out / "vid2mp3" / "settings.py").exists() and (out / "app.py").exists()
    assert not (out / "vid2mp3" / "cli").exists()


def test_the_console_script_is_the_cli_and_make_run_says_how_to_use_it():
    from infra.local import CLI_USAGE
    from vid2mp3.cli.main import main

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"vid2mp3": "vid2mp3.cli.main:main"} and callable(main)
    usage = CLI_USAGE.format(api="http://127.0.0.1:4566/_aws/execute-api/abc/v1")
    assert ".venv/bin/vid2mp3 register" in usage and "VID2MP3_API=http://127.0.0.1:4566" in usage
