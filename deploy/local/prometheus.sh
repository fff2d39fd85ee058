#!/usr/bin/env bash
# Prometheus and promtool for the observability tests (tests/deploy, tests/observability):
# Debian's `prometheus` package, installed with apt-get when either command is missing.
# The tests start their own Prometheus server (127.0.0.1, a free port, temporary storage),
# so the package's system service is neither needed nor started.
#
# Usage: deploy/local/prometheus.sh install|check
#   install  apt-get installs the package if promtool or prometheus is missing; fails if it cannot
#   check    exits non-zero unless both commands are on PATH (prints their versions)
set -euo pipefail

log() { printf 'prometheus: %s\n' "$*" >&2; }

have_both() { command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; }

install() {
  if have_both; then
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || { log "ERROR: promtool/prometheus missing and no apt-get"; exit 1; }
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "ERROR: not root and no sudo to apt-get install prometheus"; exit 1; }
    sudo="sudo"
  fi
  log "installing Debian's prometheus package (promtool, prometheus)"
  # The package's postinst would start a system service where systemd runs; policy-rc.d stops
  # that on sysvinit machines, and the tests never talk to that service anyway.
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends prometheus >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends prometheus >/dev/null; } \
    || { log "ERROR: apt-get install prometheus failed"; exit 1; }
  have_both || { log "ERROR: prometheus installed but promtool/prometheus not on PATH"; exit 1; }
}

check() {
  have_both || { log "promtool/prometheus not installed (run: $0 install)"; exit 1; }
  promtool --version 2>&1 | head -1
  prometheus --version 2>&1 | head -1
}

case "${1:-}" in
  install) install; check ;;
  check) check ;;
  *) echo "usage: $0 install|check" >&2; exit 2 ;;
esac
