"""Region and credentials for talking to a local emulator (any values work; these are conventional)."""

from __future__ import annotations

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION}
