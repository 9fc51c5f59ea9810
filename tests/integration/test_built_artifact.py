"""The built artifact, not the developer's venv, is what runs: each handler imports from it alone."""

import hashlib
import json

from infra.template_model import functions, load_template
from tests.conftest import ROOT, run_isolated
from tests.support.apigw import apigw_event


def test_each_handler_imports_from_the_built_artifact_alone(built_artifacts):
    layer = built_artifacts / "layers" / "dependencies" / "python"
    template = load_template()
    checked = []
    for logical_id, resource in functions(template).items():
        props = resource["Properties"]
        code_dir = built_artifacts / "functions" / props["CodeUri"].rstrip("/").rsplit("/", 1)[-1]
        module, _, attr = props["Handler"].rpartition(".")
        result = run_isolated(
            f"import {module}\nassert callable(getattr({module}, {attr!r})), 'handler not callable'\n"
            "import vid2mp3\nassert vid2mp3.__file__.startswith(sys.path[0]), vid2mp3.__file__\n"
            "print('ok')",
            [code_dir, layer],
        )
        assert result.returncode == 0 and result.stdout.strip() == "ok", f"{logical_id}: {result.stderr[-2000:]}"
        checked.append(logical_id)
    assert "UploadFunction" in checked


def test_the_artifact_holds_no_tests_and_no_developer_files(built_artifacts):
    for fn in (built_artifacts / "functions").iterdir():
        names = {p.name for p in fn.rglob("*")}
        assert "__pycache__" not in names
        assert not any(n.startswith("test_") for n in names), fn
        assert (fn / "vid2mp3" / "settings.py").exists()
        assert not (fn / "vid2mp3" / "cli").exists(), f"{fn.name} ships the command line"


def test_the_command_line_libraries_stay_out_of_the_dependencies_layer(built_artifacts):
    """pyproject's [tool.vid2mp3] cli-only: installed by `pip install .` for the `vid2mp3` command, never
    shipped with the functions (layer size, cold starts)."""
    layer = built_artifacts / "layers" / "dependencies" / "python"
    shipped = {p.name.split("-")[0].lower() for p in layer.glob("*.dist-info")}
    assert "chalice" in shipped
    assert not shipped & {"httpx", "rich", "platformdirs"}, shipped


def test_dependencies_layer_is_built_for_lambda(built_artifacts):
    layer = built_artifacts / "layers" / "dependencies" / "python"
    compiled = [p.name for p in layer.rglob("*.so")]
    assert compiled, "expected compiled wheels (psycopg-binary, argon2, pydantic-core)"
    assert all("x86_64" in n or "cpython-311" in n or n.endswith(".so") for n in compiled)
    result = run_isolated("import psycopg, pymongo, pika, jwt, chalice, pydantic; print('ok')", [layer])
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_the_web_function_serves_its_page_and_files_from_the_built_artifact_alone(built_artifacts):
    """The page's files travel in the web function's own artifact, byte for byte, and nothing else
    (no ffmpeg, no backing service) is needed to serve them."""
    source = ROOT / "functions" / "web" / "static"
    built = built_artifacts / "functions" / "web"
    names = sorted(p.name for p in source.iterdir())
    assert sorted(p.name for p in (built / "static").iterdir()) == names
    for name in names:
        assert (built / "static" / name).read_bytes() == (source / name).read_bytes(), name
    layer = built_artifacts / "layers" / "dependencies" / "python"
    events = {"/": apigw_event("GET", "/", caller=None)}
    for name in names:
        if name != "index.html":
            event = apigw_event("GET", "/static/{name}", caller=None)
            event["path"], event["pathParameters"] = f"/static/{name}", {"name": name}
            events[name] = event
    result = run_isolated(
        "import app, hashlib, json\n"
        f"events = json.loads({json.dumps(events)!r})\n"
        "served = {k: (r['statusCode'], hashlib.sha256(r['body'].encode()).hexdigest())\n"
        "          for k, r in ((k, app.handler(e, None)) for k, e in events.items())}\n"
        "print(json.dumps(served))",
        [built, layer],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout)
    assert served.pop("/")[0] == 200
    for name, (status, digest) in served.items():
        assert status == 200 and digest == hashlib.sha256((source / name).read_bytes()).hexdigest(), name
