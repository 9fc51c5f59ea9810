"""Deploy a built template with CloudFormation to the endpoint in AWS_ENDPOINT_URL (or any given one).

What `sam package` + `sam deploy` do, against any AWS-compatible endpoint: zip each local code and
layer directory (deterministically, keeping executable bits), upload it to an artifacts bucket
under its content hash, point the template at it, then create or update the stack and wait.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import yaml

from infra.template_model import load_template

STACK_NAME = "vid2mp3"
BUCKET = "vid2mp3-artifacts"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _fingerprint(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        st = path.stat()
        digest.update(f"{path.relative_to(directory)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_mode}\n".encode())
    return digest.hexdigest()[:20]


def zip_directory(directory: Path, cache: Path) -> Path:
    """A reproducible zip of `directory`, cached by a fingerprint of its files."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{directory.name}-{_fingerprint(directory)}.zip"
    if target.exists():
        return target
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(directory)), date_time=_EPOCH)
            mode = path.stat().st_mode
            info.external_attr = ((0o755 if mode & stat.S_IXUSR else 0o644) | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as src, zf.open(info, "w") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    partial.rename(target)
    for stale in cache.glob(f"{directory.name}-*.zip"):  # earlier builds of the same directory
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


def _clients(endpoint: str | None, region: str) -> tuple[Any, Any]:
    kwargs: dict[str, Any] = {"region_name": region}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    return boto3.client("s3", **kwargs), boto3.client("cloudformation", **kwargs)


def package(built_template: Path, s3: Any, cache: Path) -> str:
    """Upload every local artifact the built template names; return the template pointing at S3."""
    template = load_template(built_template)
    try:
        s3.head_bucket(Bucket=BUCKET)
    except botocore.exceptions.ClientError:
        s3.create_bucket(Bucket=BUCKET)
    for resource in template["Resources"].values():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            value = props.get(key)
            if isinstance(value, str) and not value.startswith("s3://"):
                archive = zip_directory(Path(value), cache)
                try:
                    s3.head_object(Bucket=BUCKET, Key=archive.name)
                except botocore.exceptions.ClientError:
                    s3.upload_file(str(archive), BUCKET, archive.name)
                props[key] = f"s3://{BUCKET}/{archive.name}"
    return yaml.safe_dump(template, sort_keys=False)


def deploy(
    built_template: Path,
    parameters: dict[str, str],
    *,
    endpoint: str | None = None,
    stack_name: str = STACK_NAME,
    region: str | None = None,
    cache: Path,
) -> dict[str, str]:
    """Create or update the stack and wait for it; returns the stack's outputs."""
    region = region or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    s3, cfn = _clients(endpoint, region)
    body = package(built_template, s3, cache)
    args: dict[str, Any] = {
        "StackName": stack_name,
        "TemplateBody": body,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    }
    waiter_config = {"Delay": 1, "MaxAttempts": 600}
    if _stack_exists(cfn, stack_name):
        try:
            cfn.update_stack(**args)
        except botocore.exceptions.ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
        else:
            cfn.get_waiter("stack_update_complete").wait(StackName=stack_name, WaiterConfig=waiter_config)
    else:
        cfn.create_stack(**args)
        cfn.get_waiter("stack_create_complete").wait(StackName=stack_name, WaiterConfig=waiter_config)
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _stack_exists(cfn: Any, stack_name: str) -> bool:
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except botocore.exceptions.ClientError:
        return False
    if stacks and stacks[0]["StackStatus"] in ("ROLLBACK_COMPLETE", "DELETE_COMPLETE"):
        if stacks[0]["StackStatus"] == "ROLLBACK_COMPLETE":
            cfn.delete_stack(StackName=stack_name)
            cfn.get_waiter("stack_delete_complete").wait(StackName=stack_name)
        return False
    return bool(stacks)


def stage_url(endpoint: str, outputs: dict[str, str]) -> str:
    """The local stage URL in the emulator's path form (no wildcard DNS needed)."""
    return f"{endpoint}/_aws/execute-api/{outputs['ApiId']}/{outputs['StageName']}"
