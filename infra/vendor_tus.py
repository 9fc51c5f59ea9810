"""The web page's one client library, tus-js-client, vendored at a pinned version.

    python -m infra.vendor_tus                    # check the vendored files against functions/web/vendor.json
    python -m infra.vendor_tus --refresh          # fetch the pinned version again from npm and copy it in
    python -m infra.vendor_tus --refresh --version 4.4.0   # move the pin to another version

A refresh runs `npm pack` of the package (npm checks the tarball against the registry's integrity), checks
that integrity against the one recorded for the pinned version (so a tarball that changed under the same
version is refused), copies the browser bundle, its source map and the licence into functions/web/static,
and records every file's SHA-256 in functions/web/vendor.json. A unit test checks the files against it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "functions" / "web"
PINS = WEB / "vendor.json"
STATIC = WEB / "static"
# Where each vendored file comes from in the npm tarball.
FILES = {
    "tus.min.js": "package/dist/tus.min.js",
    "tus.min.js.map": "package/dist/tus.min.js.map",
    "tus-js-client.LICENSE.txt": "package/LICENSE",
}


class VendorError(Exception):
    pass


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_pins(path: Path = PINS) -> dict[str, Any]:
    pins: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return pins


def check(pins: dict[str, Any], static: Path = STATIC) -> list[str]:
    """What is wrong with the vendored files (nothing: an empty list)."""
    problems = []
    for name, entry in pins["files"].items():
        path = static / name
        if not path.exists():
            problems.append(f"{name} is missing")
        elif sha256(path) != entry["sha256"]:
            problems.append(f"{name} does not match its recorded SHA-256 (run `python -m infra.vendor_tus --refresh`)")
    return problems


def npm_pack(package: str, version: str, into: Path) -> tuple[Path, str]:
    """(tarball, integrity) of `package@version` from the npm registry."""
    try:
        out = subprocess.run(["npm", "pack", f"{package}@{version}", "--json", "--pack-destination", str(into)],
                             cwd=into, capture_output=True, text=True, timeout=300, check=False)
    except FileNotFoundError:
        raise VendorError("npm is not installed") from None
    if out.returncode != 0:
        raise VendorError(f"npm pack {package}@{version} failed: {out.stderr.strip().splitlines()[-1:]}")
    info = json.loads(out.stdout)[0]
    return into / info["filename"], str(info["integrity"])


def refresh(pins: dict[str, Any], version: str | None = None, static: Path = STATIC) -> dict[str, Any]:
    """Fetch the package from npm, copy its files into `static`, and return the new pins."""
    package = pins["package"]
    wanted = version or pins["version"]
    with tempfile.TemporaryDirectory() as tmp:
        tarball, integrity = npm_pack(package, wanted, Path(tmp))
        if wanted == pins["version"] and integrity != pins["integrity"]:
            raise VendorError(f"{package}@{wanted} from npm has integrity {integrity}, not the recorded "
                              f"{pins['integrity']}: refusing it")
        extracted = Path(tmp) / "x"
        with tarfile.open(tarball) as tar:
            tar.extractall(extracted, filter="data")
        files = {}
        for name, inside in FILES.items():
            source = extracted / inside
            if not source.exists():
                raise VendorError(f"{package}@{wanted} has no {inside}")
            shutil.copyfile(source, static / name)
            files[name] = {"from": inside, "sha256": sha256(static / name)}
    return {"package": package, "version": wanted, "integrity": integrity, "files": files}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.vendor_tus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--refresh", action="store_true", help="fetch from npm and copy the files in")
    parser.add_argument("--version", help="with --refresh: move the pin to this version")
    args = parser.parse_args(argv)
    pins = load_pins()
    try:
        if args.refresh:
            pins = refresh(pins, args.version)
            PINS.write_text(json.dumps(pins, indent=2) + "\n", encoding="utf-8")
            print(f"vendored {pins['package']}@{pins['version']} ({pins['integrity']})")
    except VendorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    problems = check(pins)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{pins['package']}@{pins['version']}: every vendored file matches its SHA-256")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
