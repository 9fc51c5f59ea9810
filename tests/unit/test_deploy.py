import os
import zipfile

import boto3
import yaml
from moto import mock_aws

from infra.deploy import BUCKET, package, zip_directory


def make_tree(root):
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "app.py").write_text("def handler(e, c):\n    return 1\n")
    return root


def test_zips_are_reproducible_keep_exec_bits_and_replace_older_builds(tmp_path):
    src = make_tree(tmp_path / "fn")
    cache = tmp_path / "zips"
    first = zip_directory(src, cache)
    again = zip_directory(src, cache)
    assert again == first
    with zipfile.ZipFile(first) as zf:
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
        assert modes == {"app.py": 0o644, "bin/tool": 0o755}
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}

    (src / "app.py").write_text("def handler(e, c):\n    return 2\n")
    os.utime(src / "app.py", ns=(1, 1))
    second = zip_directory(src, cache)
    assert second != first
    assert sorted(p.name for p in cache.iterdir()) == [second.name]  # the stale build is gone


@mock_aws
def test_package_uploads_each_artifact_once_and_points_the_template_at_it(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    src = make_tree(tmp_path / "fn")
    template = tmp_path / "template.yaml"
    template.write_text(yaml.safe_dump({
        "Resources": {
            "A": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": str(src), "Handler": "app.h"}},
            "B": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": str(src), "Handler": "app.h"}},
            "L": {"Type": "AWS::Serverless::LayerVersion", "Properties": {"ContentUri": "s3://x/y.zip"}},
        }
    }))
    s3 = boto3.client("s3", region_name="us-east-1")
    body = yaml.safe_load(package(template, s3, tmp_path / "zips"))
    a, b = (body["Resources"][k]["Properties"]["CodeUri"] for k in ("A", "B"))
    assert a == b and a.startswith(f"s3://{BUCKET}/fn-")
    assert body["Resources"]["L"]["Properties"]["ContentUri"] == "s3://x/y.zip"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [a.rsplit("/", 1)[1]]
