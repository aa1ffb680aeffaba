#!/usr/bin/env bash
# What the tests need beyond scripts/setup.sh: Debian's Chromium for the browser tests (as root; apt waits up
# to five minutes for another process's dpkg lock instead of failing at once).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${QA_SETUP_SKIP_VENV:-}" = 1 ] || bash scripts/setup.sh
chromium="${QA_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ] && [ "$(id -u)" = 0 ]; then
  apt_wait=(-o DPkg::Lock::Timeout=300)
  apt-get "${apt_wait[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_wait[@]}" install -y -qq chromium >/dev/null
fi
