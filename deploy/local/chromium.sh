#!/usr/bin/env bash
# Headless chromium for the report page's browser test (tests/api/test_report_browser.py) and for
# `estate report --pdf/--png`: Debian's `chromium` package, installed with apt-get when the
# command is missing. Nothing of the browser's is started here: the test and the CLI start their
# own headless process (127.0.0.1 only, a temporary profile) and stop it again.
#
# Usage: deploy/local/chromium.sh install|check
#   install  apt-get installs the package if chromium is missing; fails if it cannot
#   check    exits non-zero unless chromium is on PATH and starts headless (prints its version)
set -euo pipefail

log() { printf 'chromium: %s\n' "$*" >&2; }

have_it() { command -v chromium >/dev/null 2>&1; }

install() {
  if have_it; then
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || { log "ERROR: chromium missing and no apt-get"; exit 1; }
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "ERROR: not root and no sudo to apt-get install chromium"; exit 1; }
    sudo="sudo"
  fi
  log "installing Debian's chromium package"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends chromium >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends chromium >/dev/null; } \
    || { log "ERROR: apt-get install chromium failed"; exit 1; }
  have_it || { log "ERROR: chromium installed but not on PATH"; exit 1; }
}

check() {
  have_it || { log "chromium not installed (run: $0 install)"; exit 1; }
  # --version does not start a browser; a headless dump of an empty page does.
  chromium --version 2>/dev/null | head -1  # (the launcher's /etc/chromium.d noise goes to stderr)
  local profile
  profile="$(mktemp -d)"
  trap 'rm -rf "$profile"' RETURN
  chromium --headless --no-sandbox --disable-gpu --user-data-dir="$profile" --dump-dom about:blank \
    >/dev/null 2>&1 || { log "ERROR: chromium is installed but does not start headless"; exit 1; }
}

case "${1:-}" in
  install) install; check ;;
  check) check ;;
  *) echo "usage: $0 install|check" >&2; exit 2 ;;
esac
