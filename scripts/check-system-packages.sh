#!/usr/bin/env sh
# Quorum needs ffmpeg/ffprobe for audio (both `make run` and `make test`); the browser tests
# also use Debian's chromium, and the audio tests make speech with espeak-ng.
# Missing packages are installed when we can (root with apt-get), else we say what to install.
set -e
mode="$1"
missing=""
command -v ffmpeg >/dev/null 2>&1 || missing="$missing ffmpeg"
command -v ffprobe >/dev/null 2>&1 || missing="$missing ffmpeg"
if [ "$mode" = "test" ]; then
  command -v espeak-ng >/dev/null 2>&1 || missing="$missing espeak-ng"
  command -v sox >/dev/null 2>&1 || missing="$missing sox"
  command -v chromium >/dev/null 2>&1 || missing="$missing chromium chromium-driver"
fi
[ -z "$missing" ] && exit 0
missing=$(echo "$missing" | tr ' ' '\n' | sort -u | tr '\n' ' ')
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing system packages:$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
else
  echo "Quorum needs these system packages:$missing"
  echo "  Debian/Ubuntu: sudo apt-get install$missing"
  [ "$mode" = "run" ] && exit 1
  echo "  (tests that need them are skipped)"
fi
