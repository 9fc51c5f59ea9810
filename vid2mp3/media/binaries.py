"""Where the ``ffmpeg`` and ``ffprobe`` executables are, wherever the function runs.

Search order, first hit wins:

1. an explicit path from the settings (``Settings.ffmpeg_path`` / ``Settings.ffprobe_path``, i.e.
   ``FFMPEG_PATH`` / ``FFPROBE_PATH``). A path (anything with a separator in it) must be an executable
   file; a bare name is looked up on ``PATH``. When an explicit value is given and does not resolve, that
   is an error: it never silently falls back to another binary.
2. ``/opt/bin``: AWS Lambda and LocalStack extract layers into ``/opt``.
3. ``<dir>/bin`` for each ``<dir>`` in ``_LAMBDA_LAYERS_DIRS`` (``os.pathsep``-separated). MiniStack's
   local workers extract each layer into its own directory and list them there; they neither create
   ``/opt`` nor put a layer's ``bin/`` on ``PATH``.
4. ``PATH`` (``os.defpath`` when ``PATH`` is unset, as ``shutil.which`` does; empty entries, which would
   mean the working directory, are skipped).

These are pure functions of their arguments: the environment is passed in, or ``os.environ`` is read at
call time, never at import time.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Mapping

OPT_DIR = "/opt"
LAYERS_DIRS_ENV = "_LAMBDA_LAYERS_DIRS"

__all__ = ["LAYERS_DIRS_ENV", "OPT_DIR", "find_binary", "find_ffmpeg", "find_ffprobe", "tool_env"]


def tool_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to run ffmpeg and ffprobe in: the caller's, with glibc's iconv modules out of reach.

    The layer's binaries are static: when a file makes them convert a character set (every MPEG-TS with a
    service description table, i.e. every broadcast recording, has its names in a DVB character set),
    static glibc loads the system's gconv modules, built for another glibc, and ffprobe dies of a
    segmentation fault (measured: every MPEG-TS ffmpeg's own muxer writes). With no modules to load,
    iconv_open fails cleanly and ffmpeg keeps the raw bytes of those names, which nobody converts anyway.
    """
    return {**(os.environ if environ is None else environ), "GCONV_PATH": "/nonexistent/gconv"}


def find_ffmpeg(
    explicit: str | None = None, environ: Mapping[str, str] | None = None, *, opt_dir: str = OPT_DIR
) -> str:
    """Absolute path of the ffmpeg to run; raises ``FileNotFoundError`` naming every place it looked."""
    return find_binary("ffmpeg", explicit, environ, opt_dir=opt_dir)


def find_ffprobe(
    explicit: str | None = None, environ: Mapping[str, str] | None = None, *, opt_dir: str = OPT_DIR
) -> str:
    """Absolute path of the ffprobe to run; raises ``FileNotFoundError`` naming every place it looked."""
    return find_binary("ffprobe", explicit, environ, opt_dir=opt_dir)


def find_binary(
    name: str,
    explicit: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    opt_dir: str = OPT_DIR,
) -> str:
    """Absolute path of executable ``name``, searched as the module docstring says.

    ``opt_dir`` stands for ``/opt`` so that tests can point it at a directory of their own.
    """
    env = os.environ if environ is None else environ
    path_dirs = _path_dirs(env)
    if explicit is not None and explicit.strip():
        return _resolve_explicit(name, explicit, path_dirs)

    places = [(os.path.join(opt_dir, "bin"), f"{opt_dir}/bin (layers on AWS and LocalStack)")]
    layer_bins = [os.path.join(layer, "bin") for layer in _split(env.get(LAYERS_DIRS_ENV, ""))]
    places += [(directory, f"{directory} (from {LAYERS_DIRS_ENV})") for directory in layer_bins]
    places += [(directory, f"{directory} (from PATH)") for directory in path_dirs]
    for directory, _ in places:
        found = _executable_in(directory, name, repair_mode=directory in layer_bins)
        if found is not None:
            return found
    looked = "; ".join(dict.fromkeys(label for _, label in places))
    raise FileNotFoundError(
        f"{name} not found. Looked in: {looked}. Build the ffmpeg layer (python layers/ffmpeg/build.py) "
        f"and attach it, or set {name.upper()}_PATH to the executable."
    )


def _resolve_explicit(name: str, explicit: str, path_dirs: Iterable[str]) -> str:
    seps = [os.sep] + ([os.altsep] if os.altsep else [])
    if any(sep in explicit for sep in seps):
        if _is_executable_file(explicit):
            return os.path.abspath(explicit)
        raise FileNotFoundError(
            f"{name}: the configured path {explicit!r} ({name.upper()}_PATH) is not an executable file"
        )
    dirs = list(path_dirs)
    for directory in dirs:
        found = _executable_in(directory, explicit)
        if found is not None:
            return found
    raise FileNotFoundError(
        f"{name}: the configured command {explicit!r} ({name.upper()}_PATH) is not on PATH "
        f"(looked in: {', '.join(dirs) or 'no PATH directories'})"
    )


def _path_dirs(env: Mapping[str, str]) -> list[str]:
    return _split(env.get("PATH", os.defpath))


def _split(value: str) -> list[str]:
    return [part for part in value.split(os.pathsep) if part]


def _executable_in(directory: str, name: str, *, repair_mode: bool = False) -> str | None:
    candidate = os.path.join(directory, name)
    if repair_mode and os.path.isfile(candidate) and not os.access(candidate, os.X_OK):
        # MiniStack quirk (1.5.33): its warm workers extract layers with ZipFile.extractall, which
        # drops the executable bit that the layer zip carries (AWS keeps it). These directories are
        # the worker's own private copies, so restoring the bit there is safe.
        with contextlib.suppress(OSError):
            os.chmod(candidate, os.stat(candidate).st_mode | stat.S_IXUSR)
    return os.path.abspath(candidate) if _is_executable_file(candidate) else None


def _is_executable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)
