#!/usr/bin/env bash
# Debian's Chromium for the browser test (tests/e2e/test_browser.py), which Playwright drives
# through executable_path: Playwright's own browser downloads are not possible here.
# Installs it when missing (as root, or with password-less sudo); says what to do otherwise.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if [ -n "${CHROMIUM_PATH:-}" ]; then
  [ -x "$CHROMIUM_PATH" ] && { echo "[browser] $CHROMIUM_PATH"; exit 0; }
  echo "[browser] CHROMIUM_PATH=$CHROMIUM_PATH is not an executable file" >&2
  exit 1
fi
for name in chromium chromium-browser; do
  if found=$(command -v "$name"); then
    echo "[browser] $found"
    exit 0
  fi
done
if ! command -v apt-get >/dev/null; then
  echo "[browser] Chromium is missing and this is not a Debian-like system (no apt-get):" \
    "install Chromium and put it on PATH, or set CHROMIUM_PATH to it" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "[browser] Chromium is missing and installing it needs root: run" \
    "'sudo apt-get install -y chromium' once, then again" >&2
  exit 1
fi
echo "[browser] installing Debian's chromium (first run only)…"
"${as_root[@]}" apt-get install -y -qq chromium >/dev/null \
  || { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq chromium >/dev/null; }
echo "[browser] $(command -v chromium)"
