import os
import subprocess
import sys
from pathlib import Path

from infra.template_model import functions, load_template, mq_event_sources

ROOT = Path(__file__).resolve().parents[2]


def test_sam_validate_lint_passes():
    sam = Path(sys.executable).parent / "sam"
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [str(sam), "validate", "--lint", "--template", str(ROOT / "infra" / "template.yaml"), "--region", "us-east-1"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_every_function_points_at_an_existing_handler():
    template = load_template()
    for logical_id, resource in functions(template).items():
        props = resource["Properties"]
        code = (ROOT / "infra" / props["CodeUri"]).resolve()
        module, _, attr = props["Handler"].rpartition(".")
        source = code / f"{module}.py"
        assert source.exists(), f"{logical_id}: {source} missing"
        assert attr in source.read_text(), f"{logical_id}: {attr} not defined in {source.name}"


def test_binary_media_types_are_written_with_a_literal_slash():
    from vid2mp3.api import BINARY_TYPES

    api = load_template()["Resources"]["Api"]["Properties"]
    assert api["BinaryMediaTypes"] == [*BINARY_TYPES, "*/*"]
    assert all("~1" not in t for t in api["BinaryMediaTypes"])


def test_public_routes_are_exactly_the_page_health_register_login_and_the_tus_preflights():
    template = load_template()
    public = set()
    for resource in functions(template).values():
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] == "Api" and (event["Properties"].get("Auth") or {}).get("Authorizer") == "NONE":
                public.add((event["Properties"]["Method"].upper(), event["Properties"]["Path"]))
    # OPTIONS: browsers send the CORS preflight without a token (it answers with tus's capabilities only)
    assert public == {("GET", "/health"), ("POST", "/auth/register"), ("POST", "/auth/login"),
                      ("OPTIONS", "/uploads"), ("OPTIONS", "/uploads/{id}"),
                      ("GET", "/"), ("GET", "/static/{name}")}  # the web page and its files


def test_the_page_has_a_small_function_of_its_own():
    """Loading the page must not wake the upload function (ffmpeg layer, backing services)."""
    resources = load_template()["Resources"]
    web = resources["WebFunction"]["Properties"]
    assert web["Handler"] == "app.handler"  # within AWS's payload limits (vid2mp3.api.lambda_handler)
    assert "Layers" not in web and web["MemorySize"] <= 512
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in web["Events"].values()}
    assert routes == {("GET", "/"), ("GET", "/static/{name}")}
    for logical_id, resource in functions(load_template()).items():
        if logical_id != "WebFunction":
            paths = {e["Properties"].get("Path") for e in (resource["Properties"].get("Events") or {}).values()}
            assert "/" not in paths and "/static/{name}" not in paths, logical_id


def test_mq_event_sources_read_queue_batch_window_and_concurrency(tmp_path):
    t = tmp_path / "t.yaml"
    t.write_text(
        """
Parameters:
  N: {Type: Number, Default: 3}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Metadata: {Bridge: {MaxConcurrency: !Ref N}}
    Properties:
      Events:
        Q:
          Type: MQ
          Properties:
            Broker: arn:x
            Queues: [q1]
            BatchSize: 7
            MaximumBatchingWindowInSeconds: 2
            SourceAccessConfigurations: [{Type: VIRTUAL_HOST, URI: /v}]
  Other:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Q:
          Type: MQ
          Properties: {Broker: arn:x, Queues: [q2]}
"""
    )
    sources = {s.queue: s for s in mq_event_sources(load_template(t))}
    assert (sources["q1"].batch_size, sources["q1"].batching_window_s, sources["q1"].virtual_host) == (7, 2.0, "/v")
    assert sources["q1"].concurrency == 3
    assert sources["q2"].concurrency == 1 and sources["q2"].virtual_host == "/"
    assert mq_event_sources(load_template(t), {"N": 5})[0].concurrency == 5
