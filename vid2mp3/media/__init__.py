"""Media tooling: locating and driving ffmpeg / ffprobe for the convert function."""
