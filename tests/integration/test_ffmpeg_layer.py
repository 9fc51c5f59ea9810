"""The ffmpeg layer as built by layers/ffmpeg/build.py: static binaries that really encode MP3.

The build runs for real (downloads are cached under .vid2mp3/cache/ffmpeg/); if it fails, every test
here fails with its output. Nothing is skipped.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from vid2mp3.media.binaries import LAYERS_DIRS_ENV, find_ffmpeg, find_ffprobe

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD = REPO_ROOT / "layers" / "ffmpeg" / "build.py"
PINS = REPO_ROOT / "layers" / "ffmpeg" / "pins.json"


def run_build(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BUILD), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("layer") / "ffmpeg"
    proc = run_build("--out", out)
    assert proc.returncode == 0, f"the ffmpeg layer build failed:\n{describe(proc)}"
    return out, proc


@pytest.fixture(scope="module")
def layer(built: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    return built[0]


def run(*cmd: str | Path) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{cmd} failed: {proc.stderr}"
    return proc.stdout


def elf_program_header_types(path: Path) -> list[int]:
    """p_type of every program header of a 64-bit little-endian ELF file."""
    with path.open("rb") as f:
        header = f.read(64)
        assert header[:4] == b"\x7fELF", f"{path} is not ELF"
        assert header[4] == 2 and header[5] == 1, f"{path} is not 64-bit little-endian ELF"
        assert struct.unpack_from("<H", header, 18)[0] == 62, f"{path} is not x86-64"
        (phoff,) = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        types = []
        for index in range(phnum):
            f.seek(phoff + index * phentsize)
            types.append(struct.unpack("<I", f.read(4))[0])
        return types


def test_layer_holds_both_binaries_executable(layer: Path) -> None:
    for name in ("ffmpeg", "ffprobe"):
        path = layer / "bin" / name
        assert path.is_file() and not path.is_symlink(), path
        mode = path.stat().st_mode
        assert mode & stat.S_IXUSR and mode & stat.S_IXGRP and mode & stat.S_IXOTH, oct(mode)
        assert os.access(path, os.X_OK)
    assert sorted(p.name for p in (layer / "bin").iterdir()) == ["ffmpeg", "ffprobe"]


def test_manifest_records_the_pinned_provenance(layer: Path) -> None:
    pins = json.loads(PINS.read_text())
    manifest = json.loads((layer / "ffmpeg-layer.json").read_text())
    for name in ("ffmpeg", "ffprobe"):
        assert manifest["binaries"][name]["sha256"] == pins["binaries"][name]["sha256"]
        assert manifest["binaries"][name]["version"] == pins["binaries"][name]["version"]
    assert manifest["artifacts"].keys() == pins["artifacts"].keys()


def test_build_reports_sizes_and_the_aws_limit_check(
    built: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, proc = built
    assert "size bin/ffmpeg:" in proc.stdout
    assert "size bin/ffprobe:" in proc.stdout
    assert "size layer, unzipped:" in proc.stdout
    assert "AWS unzipped limit 250 MiB: OK" in proc.stdout


def test_binaries_are_statically_linked(layer: Path) -> None:
    for name in ("ffmpeg", "ffprobe"):
        types = elf_program_header_types(layer / "bin" / name)
        assert 3 not in types, f"{name} has PT_INTERP: it needs a dynamic loader"
        assert 2 not in types, f"{name} has PT_DYNAMIC: it links shared libraries"


def test_ffmpeg_has_libmp3lame(layer: Path) -> None:
    encoders = run(layer / "bin" / "ffmpeg", "-hide_banner", "-encoders")
    assert " libmp3lame " in encoders


@pytest.mark.parametrize("name", ["ffmpeg", "ffprobe"])
def test_binaries_report_the_pinned_version(layer: Path, name: str) -> None:
    version = json.loads(PINS.read_text())["binaries"][name]["version"]
    first_line = run(layer / "bin" / name, "-hide_banner", "-version").splitlines()[0]
    assert first_line.startswith(f"{name} version {version} "), first_line


def test_converts_a_generated_sine_to_mp3_of_the_same_duration(layer: Path, tmp_path: Path) -> None:
    mp3 = tmp_path / "sine.mp3"
    run(
        layer / "bin" / "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "sine=d=2",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "192k",
        mp3,
    )
    assert mp3.stat().st_size > 10_000
    entries = "format=duration,format_name:stream=codec_name"
    probe = json.loads(
        run(layer / "bin" / "ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", mp3)
    )
    assert probe["format"]["format_name"] == "mp3"
    assert [s["codec_name"] for s in probe["streams"]] == ["mp3"]
    assert float(probe["format"]["duration"]) == pytest.approx(2.0, abs=0.1)


def test_find_binaries_return_the_layers_as_ministack_runs_it(layer: Path, tmp_path: Path) -> None:
    # MiniStack's workers: no /opt, the layer's bin/ not on PATH, its directory in _LAMBDA_LAYERS_DIRS.
    decoy = tmp_path / "decoy-bin"
    decoy.mkdir()
    for name in ("ffmpeg", "ffprobe"):
        (decoy / name).write_text("#!/bin/sh\nexit 1\n")
        (decoy / name).chmod(0o755)
    env = {LAYERS_DIRS_ENV: os.pathsep.join([str(tmp_path / "other-layer"), str(layer)]), "PATH": str(decoy)}
    no_opt = str(tmp_path / "no-opt")
    ffmpeg = find_ffmpeg(None, env, opt_dir=no_opt)
    ffprobe = find_ffprobe(None, env, opt_dir=no_opt)
    assert ffmpeg == str(layer / "bin" / "ffmpeg")
    assert ffprobe == str(layer / "bin" / "ffprobe")
    assert run(ffmpeg, "-hide_banner", "-version").startswith("ffmpeg version ")
    assert run(ffprobe, "-hide_banner", "-version").startswith("ffprobe version ")


def test_rebuild_of_an_up_to_date_layer_is_a_no_op(layer: Path) -> None:
    before = (layer / "bin" / "ffmpeg").stat()
    proc = run_build("--out", layer)
    assert proc.returncode == 0, describe(proc)
    assert "is up to date" in proc.stdout
    after = (layer / "bin" / "ffmpeg").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize("target", ["artifact", "binary"])
def test_sha256_mismatch_is_a_hard_error(layer: Path, tmp_path: Path, target: str) -> None:
    pins = json.loads(PINS.read_text())
    entry = next(iter(pins["artifacts"].values())) if target == "artifact" else pins["binaries"]["ffmpeg"]
    entry["sha256"] = ("0" if entry["sha256"][0] != "0" else "1") + entry["sha256"][1:]
    bad_pins = tmp_path / "pins.json"
    bad_pins.write_text(json.dumps(pins))
    out = tmp_path / "out"
    # The default cache holds the genuine artifact (the `layer` fixture put it there), so no download.
    proc = run_build("--pins", bad_pins, "--out", out)
    assert proc.returncode == 1, describe(proc)
    assert "sha256 mismatch" in proc.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".out.*")), "a staging directory was left behind"


def test_refuses_to_replace_a_directory_it_did_not_make(tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    proc = run_build("--out", out)
    assert proc.returncode == 1, describe(proc)
    assert "refusing to replace" in proc.stderr
    assert (out / "notes.txt").read_text() == "keep me"
