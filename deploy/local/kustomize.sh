#!/usr/bin/env bash
# kustomize for the Kubernetes test (tests/deploy/test_kubernetes.py): built from the Go module
# proxy with the machine's Go toolchain into the cache, once. The test renders deploy/k8s with
# it (`kustomize build`, what `kubectl kustomize` runs) and validates every rendered object.
#
# Usage: deploy/local/kustomize.sh install|path
#   install  builds kustomize if the cached binary is missing; fails if it cannot
#   path     prints the binary's path (exits non-zero if it is not built)
#
#   ESTATE_CACHE_DIR   binary cache root  (default ~/.cache/estate-platform)
set -euo pipefail

KUSTOMIZE_VERSION="5.7.1"  # the newest release this machine's Go (1.26) builds; 5.8 needs Go 1.27
CACHE_DIR="${ESTATE_CACHE_DIR:-$HOME/.cache/estate-platform}/kustomize-$KUSTOMIZE_VERSION"
BIN="$CACHE_DIR/kustomize"

log() { printf 'kustomize: %s\n' "$*" >&2; }

install() {
  if [ -x "$BIN" ]; then
    return 0
  fi
  command -v go >/dev/null 2>&1 || { log "ERROR: no Go toolchain to build kustomize with"; exit 1; }
  mkdir -p "$CACHE_DIR"
  log "building kustomize $KUSTOMIZE_VERSION (once; cached in $CACHE_DIR)"
  local work
  work="$(mktemp -d)"
  # Outside any module, so the repo's go.mod files play no part.
  if ! (cd "$work" && GOBIN="$CACHE_DIR" GOTOOLCHAIN=local GOFLAGS= \
        go install "sigs.k8s.io/kustomize/kustomize/v5@v$KUSTOMIZE_VERSION") >"$CACHE_DIR/build.log" 2>&1; then
    cat "$CACHE_DIR/build.log" >&2
    rm -rf "$work"
    log "ERROR: building kustomize failed"
    exit 1
  fi
  rm -rf "$work"
  [ -x "$BIN" ] || { log "ERROR: kustomize built but $BIN is missing"; exit 1; }
}

case "${1:-}" in
  install) install ;;
  path) [ -x "$BIN" ] || { log "not built (run: $0 install)"; exit 1; }; echo "$BIN" ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
