#!/usr/bin/env bash
# The Debian packages `make test` needs beyond Python and Node, installed only when missing: the tools
# the corpus of real-world media is made with (tests/support/corpus.py: Chromium's MediaRecorder,
# GStreamer's muxers, mkvmerge), and the browser the e2e tier drives the web page in (Debian's chromium,
# never a downloaded one, and a font). Run by `make test` (and so by CI); a no-op when all are there.
set -euo pipefail

PACKAGES=(chromium fonts-dejavu-core mkvtoolnix gstreamer1.0-tools gstreamer1.0-plugins-base
          gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
((${#missing[@]})) || exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "error: the tests need these Debian packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  sudo=(sudo)
fi
echo "installing ${missing[*]} ..."
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
