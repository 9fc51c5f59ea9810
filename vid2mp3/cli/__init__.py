"""`vid2mp3`, the command line client: register, log in, convert videos to MP3s (resumable tus uploads in
4 MiB parts, the conversion's progress, the download), list, status, download, rm.

It talks to the HTTP API only, like any other client; nothing in the functions imports it, and its
libraries (httpx, rich, platformdirs) stay out of the functions' dependencies layer (`[tool.vid2mp3]
cli-only` in pyproject.toml).
"""
