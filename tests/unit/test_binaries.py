"""Where vid2mp3.media.binaries looks for ffmpeg / ffprobe, and in which order (fake executables only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vid2mp3.media.binaries import LAYERS_DIRS_ENV, find_binary, find_ffmpeg, find_ffprobe


def make_exe(directory: Path, name: str = "ffmpeg", mode: int = 0o755) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return path


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """One directory per kind of place; each starts empty."""
    names = ("explicit", "opt", "layer1", "layer2", "path1", "path2", "empty_opt")
    dirs = {name: tmp_path / name for name in names}
    for d in dirs.values():
        d.mkdir()
    return dirs


def env_for(places: dict[str, Path]) -> dict[str, str]:
    return {
        LAYERS_DIRS_ENV: os.pathsep.join([str(places["layer1"]), str(places["layer2"])]),
        "PATH": os.pathsep.join([str(places["path1"]), str(places["path2"])]),
    }


def find(places: dict[str, Path], explicit: str | None = None, name: str = "ffmpeg") -> str:
    return find_binary(name, explicit, env_for(places), opt_dir=str(places["opt"]))


def test_explicit_path_wins_over_everything(places: dict[str, Path]) -> None:
    explicit = make_exe(places["explicit"], "my-ffmpeg")
    make_exe(places["opt"] / "bin")
    make_exe(places["layer1"] / "bin")
    make_exe(places["path1"])
    assert find(places, str(explicit)) == str(explicit)


def test_explicit_path_that_is_not_executable_is_an_error_not_a_fallback(places: dict[str, Path]) -> None:
    not_exe = make_exe(places["explicit"], "ffmpeg", mode=0o644)
    make_exe(places["opt"] / "bin")
    with pytest.raises(FileNotFoundError, match="FFMPEG_PATH") as excinfo:
        find(places, str(not_exe))
    assert str(not_exe) in str(excinfo.value)
    with pytest.raises(FileNotFoundError, match="not an executable file"):
        find(places, str(places["explicit"] / "missing"))


def test_explicit_bare_name_is_looked_up_on_path_only(places: dict[str, Path]) -> None:
    make_exe(places["opt"] / "bin", "ffmpeg7")
    in_path = make_exe(places["path2"], "ffmpeg7")
    assert find(places, "ffmpeg7") == str(in_path)
    with pytest.raises(FileNotFoundError, match=r"'ffmpeg8'.*not on PATH"):
        find(places, "ffmpeg8")


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_explicit_value_means_unset(places: dict[str, Path], blank: str) -> None:
    in_opt = make_exe(places["opt"] / "bin")
    assert find(places, blank) == str(in_opt)


def test_opt_bin_comes_before_layer_dirs_and_path(places: dict[str, Path]) -> None:
    in_opt = make_exe(places["opt"] / "bin")
    make_exe(places["layer1"] / "bin")
    make_exe(places["path1"])
    assert find(places) == str(in_opt)


def test_layer_dirs_come_before_path_in_listed_order(places: dict[str, Path]) -> None:
    in_layer2 = make_exe(places["layer2"] / "bin")
    make_exe(places["path1"])
    assert find(places) == str(in_layer2)
    in_layer1 = make_exe(places["layer1"] / "bin")
    assert find(places) == str(in_layer1)


def test_layer_dir_itself_is_not_searched_only_its_bin(places: dict[str, Path]) -> None:
    make_exe(places["layer1"])  # <layer>/ffmpeg, not <layer>/bin/ffmpeg
    in_path = make_exe(places["path1"])
    assert find(places) == str(in_path)


def test_path_is_the_last_resort_in_order(places: dict[str, Path]) -> None:
    in_path2 = make_exe(places["path2"])
    assert find(places) == str(in_path2)
    in_path1 = make_exe(places["path1"])
    assert find(places) == str(in_path1)


def test_non_executable_files_and_directories_are_skipped(places: dict[str, Path]) -> None:
    make_exe(places["opt"] / "bin", mode=0o644)
    (places["layer1"] / "bin" / "ffmpeg").mkdir(parents=True)
    in_path = make_exe(places["path1"])
    assert find(places) == str(in_path)


def test_empty_entries_never_mean_the_working_directory(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_exe(places["explicit"])
    monkeypatch.chdir(places["explicit"])
    env = {LAYERS_DIRS_ENV: os.pathsep, "PATH": os.pathsep * 2}
    with pytest.raises(FileNotFoundError):
        find_ffmpeg(None, env, opt_dir=str(places["empty_opt"]))


def test_not_found_names_every_place_it_looked(places: dict[str, Path]) -> None:
    with pytest.raises(FileNotFoundError) as excinfo:
        find(places)
    message = str(excinfo.value)
    assert message.startswith("ffmpeg not found")
    for expected in (
        str(places["opt"] / "bin"),
        str(places["layer1"] / "bin"),
        str(places["layer2"] / "bin"),
        str(places["path1"]),
        str(places["path2"]),
        LAYERS_DIRS_ENV,
        "FFMPEG_PATH",
    ):
        assert expected in message


def test_find_ffprobe_looks_for_ffprobe(places: dict[str, Path]) -> None:
    make_exe(places["layer1"] / "bin", "ffmpeg")
    probe = make_exe(places["layer2"] / "bin", "ffprobe")
    assert find_ffprobe(None, env_for(places), opt_dir=str(places["opt"])) == str(probe)
    explicit = make_exe(places["explicit"], "ffprobe")
    assert find_ffprobe(str(explicit), env_for(places), opt_dir=str(places["opt"])) == str(explicit)
    with pytest.raises(FileNotFoundError, match="FFPROBE_PATH"):
        find_ffprobe(str(places["explicit"] / "nope"), env_for(places))


def test_environment_is_read_at_call_time_when_not_passed(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    in_layer = make_exe(places["layer1"] / "bin")
    monkeypatch.setenv(LAYERS_DIRS_ENV, str(places["layer1"]))
    monkeypatch.setenv("PATH", "")
    assert find_ffmpeg(opt_dir=str(places["empty_opt"])) == str(in_layer)
    monkeypatch.delenv(LAYERS_DIRS_ENV)
    with pytest.raises(FileNotFoundError):
        find_ffmpeg(opt_dir=str(places["empty_opt"]))


def test_relative_locations_come_back_absolute(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    in_layer = make_exe(places["layer1"] / "bin")
    monkeypatch.chdir(places["layer1"].parent)
    env = {LAYERS_DIRS_ENV: "layer1", "PATH": ""}
    found = find_ffmpeg(None, env, opt_dir=str(places["empty_opt"]))
    assert os.path.isabs(found)
    assert found == str(in_layer)
    assert find_ffmpeg(os.path.join("layer1", "bin", "ffmpeg"), env) == str(in_layer)
