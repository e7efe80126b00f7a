#!/usr/bin/env bash
# Installs the system packages the embedded defaults need (espeak-ng for offline TTS, sox for
# audio checks), with apt-get when running as root; otherwise says exactly what to install.
# With --browser also Debian's Chromium, which the browser tests drive (tests/browser; never
# `playwright install`).
set -euo pipefail
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v sox >/dev/null 2>&1 || missing+=(sox)
if [ "${1:-}" = "--browser" ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "error: Parley needs these system packages: ${missing[*]}" >&2
  echo "       install them, e.g.: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
