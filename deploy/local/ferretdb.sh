#!/usr/bin/env bash
# Local MongoDB-wire server for development and integration tests:
# FerretDB 1.24.2 with its SQLite backend, built from deploy/local/ferretdb/
# (a tiny Go main module around the embeddable package; see main.go).
#
# Usage: deploy/local/ferretdb.sh install|start|stop|status|uri
#
# Environment:
#   ESTATE_CACHE_DIR   binary cache root  (default ~/.cache/estate-platform)
#   ESTATE_STATE_DIR   runtime state root (default <repo>/.local)
#   FERRETDB_PORT      TCP port on 127.0.0.1 (default 37017)
#   FERRETDB_LOG_LEVEL debug|info|warn|error (default warn)
#   FERRETDB_GOGC      Go's GOGC for the server (default 400, see below; 100 = Go's default)
#   FERRETDB_SQLITE_QUERY  query string appended to the SQLite URL
#                      (default: WAL + synchronous=OFF, see below; "" = FerretDB defaults)
#   PYTHON             interpreter with pymongo (default <repo>/.venv/bin/python)
#   GO                 go command (default: go on PATH)
#
# `start` wipes the SQLite directory, so every start is a fresh, empty server.
set -euo pipefail

FERRETDB_VERSION=1.24.2

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SRC="$HERE/ferretdb"

CACHE_DIR="${ESTATE_CACHE_DIR:-$HOME/.cache/estate-platform}/ferretdb-$FERRETDB_VERSION"
BIN="$CACHE_DIR/ferretdb"
STAMP="$CACHE_DIR/ferretdb.source-hash"

STATE_DIR="${ESTATE_STATE_DIR:-$REPO/.local}/ferretdb"
DATA_DIR="$STATE_DIR/data"
LOG_FILE="$STATE_DIR/ferretdb.log"
PID_FILE="$STATE_DIR/ferretdb.pid"

PORT="${FERRETDB_PORT:-37017}"
LISTEN="127.0.0.1:$PORT"
URI="mongodb://$LISTEN/"
LOG_LEVEL="${FERRETDB_LOG_LEVEL:-warn}"
# FerretDB 1.24 passes _pragma parameters to modernc.org/sqlite and adds its defaults
# (busy_timeout(10000), journal_mode(wal), auto_vacuum(none)) only for those not given.
# synchronous(off): no fsync per commit; measured 1.5-2.5x faster bulk updates and ~1.5x
# faster single writes than the default (FULL) or NORMAL, which did not differ. Only an OS
# crash or power cut could lose or corrupt data, and `start` wipes the data anyway.
SQLITE_QUERY="${FERRETDB_SQLITE_QUERY-_pragma=journal_mode(wal)&_pragma=synchronous(off)}"
SQLITE_URL="file:$DATA_DIR/${SQLITE_QUERY:+?$SQLITE_QUERY}"
# GOGC=400: the garbage collector runs a quarter as often, for a larger heap (a few hundred MB
# under a bulk import). Inserting 35,000 inventory documents in 1,000s took 8.2 s instead of
# 10.7 s (Go's default, 100) on 2026-11-23, with the CPU FerretDB spares going to the services.
GOGC_VALUE="${FERRETDB_GOGC:-400}"

PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
GO="${GO:-go}"
READY_DEADLINE="${FERRETDB_READY_DEADLINE:-60}"
STOP_GRACE="${FERRETDB_STOP_GRACE:-15}"

log() { printf 'ferretdb: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Build-time patches: one-line fixes to FerretDB 1.24.2 (the module is copied from the
# module cache, patched, and wired in with a go.work `replace`; `go build -overlay` refuses
# files in GOMODCACHE), plus one added file. Patch i replaces PATCH_FROMS[i] by PATCH_TOS[i]
# on each line of PATCH_FILES[i] that contains it, and must match exactly PATCH_COUNTS[i]
# lines, else the build fails loudly. FERRETDB_PATCHES=0 builds stock FerretDB.
#  1. SQLite looks documents up by _id with `_ferretdb_sjson->'$._id' = ?` but the _id index
#     is on `_ferretdb_sjson->"_id"`; SQLite uses an expression index only for the same
#     expression, so every find/update/delete by _id, and each per-document write of an
#     update_many, scanned the whole table. Same results, now via the index.
#  2. The `update` command defers closing each statement's read cursor to the end of the
#     whole command, so a command with >= 100 statements (bulk_write of 100 UpdateOne)
#     exhausts the 100-connection pool and hangs forever, wedging that database. Close the
#     cursor after each statement (closing twice is harmless).
#  3. The SQLite backend pushed a filter down to SQL only if it was exactly {_id: value};
#     any other filter, e.g. the versioned write {_id: x, version: v}, read and decoded the
#     whole collection (4-5 s at 45,500 devices). The added estate_pushdown.go (below)
#     builds `WHERE <_id> = ?` from the top-level _id of any filter when it is a string or
#     ObjectID (the types upstream pushes down; numbers are not, 1 must match 1.0), or
#     `WHERE <_id> IN (?, ...)` when it is {$in: [...]} of only such values (at most
#     10,000); anything else (sub-document, array, other operators, duplicate keys) is not
#     pushed down, as before. Patched in Query and Explain (the same line, 2 matches); 4
#     makes explain report filterPushdown. Safe because every caller (find, count,
#     distinct, aggregate $match, update, delete, findAndModify) re-checks each fetched
#     document against the whole filter, and limits are pushed down only for empty
#     filters, so fetching a superset cannot change results.
#  5-7. Lost updates. An update, findAndModify or delete statement reads the matching
#     documents, applies the change in Go and writes each document back by _id, with no
#     check that it is still the one read. Two statements on one document at once (the
#     outbox relay's $pullAll and a versioned $set) could both be acknowledged while the
#     later write-back silently dropped the other's change: benchmarks/ferretdb_lost_update.py
#     lost 6-23 of 1,500 such writes. MongoDB is atomic per document. The added
#     estate_lock.go holds one lock per collection from each such statement's read to its
#     last write (the delete and findAndModify patches also defer the release, so a panic
#     cannot leave the lock held); inserts and reads do not take it. Cost: statements
#     writing one collection run one at a time, which SQLite's single writer mostly did
#     already. tests/integration/test_store_atomic_update.py fails without it.
PATCHES="${FERRETDB_PATCHES:-1}"
PATCH_FILES=(
    internal/backends/sqlite/metadata/metadata.go
    internal/handler/msg_update.go
    internal/backends/sqlite/collection.go
    internal/backends/sqlite/collection.go
    internal/handler/msg_update.go
    internal/handler/msg_findandmodify.go
    internal/handler/msg_delete.go
)
PATCH_COUNTS=(1 1 2 1 1 1 1)
PATCH_FROMS=(
    "IDColumn = DefaultColumn + \"->'\$._id'\""
    'result, err := common.UpdateDocument(ctx, c, "update", iter, &u)'
    'if params.Filter.Len() == 1 {'
    'sortPushdown := orderByClause != ""'
    'res, err := c.Query(ctx, &qp)'
    'queryRes, err := c.Query(ctx, &qp)'
    'd, err = h.execDelete(connCtx, c, &p)'
)
PATCH_TOS=(
    'IDColumn = DefaultColumn + `->"_id"` // estate-platform patch: match the _id index'
    'result, err := common.UpdateDocument(ctx, c, "update", iter, &u); closer.Close(); unlock() // estate-platform patches 2, 5'
    'if whereClause, args = estateIDWhere(params.Filter); whereClause == "" && params.Filter.Len() == 1 { // estate-platform patch'
    'sortPushdown, filterPushdown := orderByClause != "", whereClause != "" // estate-platform patch'
    'unlock := estateLockCollection(params.DB, params.Collection); defer unlock(); res, err := c.Query(ctx, &qp) // estate-platform patch'
    'defer estateLockCollection(params.DB, params.Collection)(); queryRes, err := c.Query(ctx, &qp) // estate-platform patch'
    'unlock := estateLockCollection(params.DB, params.Collection); defer unlock(); d, err = h.execDelete(connCtx, c, &p); unlock() // estate-platform patch'
)
# Files added to the module (none may exist yet): patch 3's helper, then patches 5-7's lock.
PATCH_NEW_FILES=(
    internal/backends/sqlite/estate_pushdown.go
    internal/handler/estate_lock.go
)
patch_new_file_text() {
    case "$1" in
    internal/backends/sqlite/estate_pushdown.go) pushdown_go ;;
    internal/handler/estate_lock.go) lock_go ;;
    *) die "no text for $1" ;;
    esac
}

pushdown_go() {
    cat <<'GO'
// Added by estate-platform's deploy/local/ferretdb.sh (build-time patch 3); not upstream.

package sqlite

import (
	"fmt"
	"strings"

	"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// estateIDWhere returns the WHERE clause and its arguments selecting the documents allowed
// by the filter's top-level _id condition, if that is a string or ObjectID, or {$in: [...]}
// of only those; "" otherwise. The filter's other keys are ignored: callers re-check every
// fetched document against the whole filter.
func estateIDWhere(filter *types.Document) (string, []any) {
	if filter.Len() == 0 || !filter.Has("_id") {
		return "", nil
	}

	if _, dup := filter.FindDuplicateKey(); dup { // Get would panic
		return "", nil
	}

	ids := []any{must.NotFail(filter.Get("_id"))}

	if op, ok := ids[0].(*types.Document); ok {
		if op.Len() != 1 || op.Command() != "$in" {
			return "", nil
		}

		in, ok := must.NotFail(op.Get("$in")).(*types.Array)
		if !ok || in.Len() == 0 || in.Len() > 10000 {
			return "", nil
		}

		ids = make([]any, in.Len())
		for i := range ids {
			ids[i] = must.NotFail(in.Get(i))
		}
	}

	args := make([]any, len(ids))

	for i, id := range ids {
		switch id.(type) {
		case string, types.ObjectID:
			args[i] = string(must.NotFail(sjson.MarshalSingleValue(id)))
		default:
			return "", nil
		}
	}

	if len(args) == 1 {
		return fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn), args
	}

	return fmt.Sprintf(` WHERE %s IN (?%s)`, metadata.IDColumn, strings.Repeat(`, ?`, len(args)-1)), args
}
GO
}

lock_go() {
    cat <<'GO'
// Added by estate-platform's deploy/local/ferretdb.sh (build-time patches 5-7); not upstream.

package handler

import "sync"

// estateLocks holds one mutex per "database.collection", created on first use.
var estateLocks sync.Map

// estateLockCollection locks the collection for one statement that reads documents and
// writes them back (update, findAndModify, delete), so that no other such statement can
// change a document between this one's read and its write-back. It returns the unlock
// function, which may be called more than once (only the first call unlocks).
func estateLockCollection(db, collection string) func() {
	m, _ := estateLocks.LoadOrStore(db+"."+collection, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()

	return sync.OnceFunc(mu.Unlock)
}
GO
}

source_hash() {
    local f
    {
        (cd "$SRC" && cat go.mod go.sum main.go)
        if [[ "$PATCHES" == 1 ]]; then
            printf '%s\n' "${PATCH_FILES[@]}" "${PATCH_COUNTS[@]}" "${PATCH_FROMS[@]}" "${PATCH_TOS[@]}"
            for f in "${PATCH_NEW_FILES[@]}"; do
                printf '%s\n' "$f"
                patch_new_file_text "$f"
            done
        fi
    } | sha256sum | cut -c1-16
}

# Prepares $CACHE_DIR/patched/{FerretDB,go.work}; prints the go.work path.
make_workspace() {
    local dir work="$CACHE_DIR/patched" i f
    (cd "$SRC" && "$GO" mod download github.com/FerretDB/FerretDB) >&2 || die "go mod download failed"
    dir="$(cd "$SRC" && "$GO" list -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)"
    [[ -n "$dir" && -d "$dir" ]] || die "FerretDB module not found in the module cache"
    rm -rf "$work"
    mkdir -p "$work"
    cp -R "$dir" "$work/FerretDB"
    chmod -R u+w "$work/FerretDB"
    for i in "${!PATCH_FILES[@]}"; do
        f="$work/FerretDB/${PATCH_FILES[$i]}"
        [[ "$(grep -cF -- "${PATCH_FROMS[$i]}" "$f")" == "${PATCH_COUNTS[$i]}" ]] \
            || die "patch $((i + 1)) does not apply to ${PATCH_FILES[$i]} (FerretDB changed?); FERRETDB_PATCHES=0 builds stock"
        PATCH_FROM="${PATCH_FROMS[$i]}" PATCH_TO="${PATCH_TOS[$i]}" awk '
            (i = index($0, ENVIRON["PATCH_FROM"])) {
                $0 = substr($0, 1, i - 1) ENVIRON["PATCH_TO"] substr($0, i + length(ENVIRON["PATCH_FROM"]))
            }
            { print }' "$f" >"$f.patched"
        [[ "$(grep -cF -- "${PATCH_TOS[$i]}" "$f.patched")" == "${PATCH_COUNTS[$i]}" ]] || die "patch $((i + 1)) failed"
        mv -f "$f.patched" "$f"
    done
    for i in "${PATCH_NEW_FILES[@]}"; do
        f="$work/FerretDB/$i"
        [[ ! -e "$f" ]] || die "$i already exists in FerretDB (FerretDB changed?)"
        patch_new_file_text "$i" >"$f"
    done
    printf 'go 1.24\n\nuse "%s"\n\nreplace github.com/FerretDB/FerretDB v1.24.2 => "%s"\n' \
        "$SRC" "$work/FerretDB" >"$work/go.work"
    printf '%s' "$work/go.work"
}

cmd_install() {
    local want have=""
    want="$(source_hash)"
    [[ -f "$STAMP" ]] && have="$(cat "$STAMP")"
    if [[ -x "$BIN" && "$have" == "$want" ]]; then
        return 0
    fi
    command -v "$GO" >/dev/null 2>&1 || die "'$GO' not found; install Go >= 1.24 (or set GO=/path/to/go)"
    mkdir -p "$CACHE_DIR"
    # Serialise concurrent installs (e.g. parallel test runs).
    exec 9>"$CACHE_DIR/.lock"
    flock 9
    have=""
    [[ -f "$STAMP" ]] && have="$(cat "$STAMP")"
    if [[ -x "$BIN" && "$have" == "$want" ]]; then
        exec 9>&-
        return 0
    fi
    log "building FerretDB $FERRETDB_VERSION into $BIN (first build: ~1-2 min on 2 cores)"
    local tmp="$BIN.tmp.$$" start=$SECONDS
    local gowork=off
    if [[ "$PATCHES" == 1 ]]; then
        gowork="$(make_workspace)"
    fi
    # Default GOPATH/GOMODCACHE/GOCACHE so the module and build caches are reused.
    # go.sum is committed; -mod=readonly (the default) keeps the build reproducible.
    if ! (cd "$SRC" && GOWORK="$gowork" GOFLAGS= CGO_ENABLED=0 \
        "$GO" build -trimpath -buildvcs=false -o "$tmp" .); then
        rm -f "$tmp"
        exec 9>&-
        die "go build failed"
    fi
    mv -f "$tmp" "$BIN"
    printf '%s\n' "$want" >"$STAMP"
    exec 9>&-
    log "built in $((SECONDS - start)) s"
}

read_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    printf '%s' "$pid"
}

# True if $1 is a live (non-zombie) process running our ferretdb binary.
is_ours() {
    local pid="$1" exe state
    [[ -d "/proc/$pid" ]] || return 1
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ "$state" != "Z" ]] || return 1
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    # The binary may have been replaced by a rebuild: "(deleted)" suffix.
    [[ "${exe% (deleted)}" == "$BIN" ]]
}

need_python() {
    [[ -x "$PYTHON" ]] || command -v "$PYTHON" >/dev/null 2>&1 \
        || die "python '$PYTHON' not found (set PYTHON=... to an interpreter with pymongo)"
    "$PYTHON" -c 'import pymongo' 2>/dev/null \
        || die "'$PYTHON' cannot import pymongo (install the project's dev dependencies)"
}

answers() { # $1: deadline seconds, $2: pid to watch (optional)
    "$PYTHON" "$HERE/ferretdb_ready.py" "$URI" --deadline "$1" ${2:+--pid "$2"} "${@:3}"
}

cmd_start() {
    need_python
    cmd_install
    mkdir -p "$STATE_DIR"

    local pid
    if pid="$(read_pid)" && is_ours "$pid"; then
        if answers 5 "$pid" --quiet 2>/dev/null; then
            log "already running (pid $pid) on $URI"
            return 0
        fi
        log "pid $pid is running but not answering; restarting it"
        cmd_stop
    fi
    rm -f "$PID_FILE"

    # Refuse to report success because someone else's server answers on our port.
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        die "$LISTEN is already in use by another process (not $BIN); set FERRETDB_PORT"
    fi

    rm -rf "$DATA_DIR"
    mkdir -p "$DATA_DIR"
    : >"$LOG_FILE"
    log "starting on $URI (state $STATE_DIR)"
    # setsid: own session, so Ctrl-C in the calling terminal or the caller's exit does not
    # reach it; in a non-interactive shell the child is not a group leader, so setsid
    # execs in place and $! is the server's pid.
    GOGC="$GOGC_VALUE" setsid nohup "$BIN" -listen "$LISTEN" -sqlite-url "$SQLITE_URL" -log-level "$LOG_LEVEL" \
        >>"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"

    local start=$SECONDS
    if ! answers "$READY_DEADLINE" "$pid"; then
        log "FerretDB did not become ready; last lines of $LOG_FILE:"
        tail -n 40 "$LOG_FILE" >&2 || true
        cmd_stop >/dev/null 2>&1 || true
        die "start failed"
    fi
    log "ready in $((SECONDS - start)) s (pid $pid, log $LOG_FILE)"
}

cmd_stop() {
    local pid
    if ! pid="$(read_pid)"; then
        log "not running"
        return 0
    fi
    if ! is_ours "$pid"; then
        log "stale pid file (pid $pid is not $BIN); removing it"
        rm -f "$PID_FILE"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < STOP_GRACE * 10; i++)); do
        is_ours "$pid" || break
        sleep 0.1
    done
    if is_ours "$pid"; then
        log "pid $pid ignored SIGTERM for ${STOP_GRACE}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            is_ours "$pid" || break
            sleep 0.1
        done
        is_ours "$pid" && die "pid $pid survived SIGKILL"
    fi
    rm -f "$PID_FILE"
    log "stopped (pid $pid)"
}

cmd_status() {
    local pid
    if pid="$(read_pid)" && is_ours "$pid"; then
        need_python
        if answers 3 "$pid" --quiet 2>/dev/null; then
            echo "ferretdb: running (pid $pid) on $URI, answering"
            return 0
        fi
        echo "ferretdb: running (pid $pid) on $URI, NOT answering (log $LOG_FILE)"
        return 1
    fi
    echo "ferretdb: not running"
    return 3
}

case "${1:-}" in
    install) cmd_install; echo "$BIN" ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    uri) echo "$URI" ;;
    *)
        echo "usage: $0 install|start|stop|status|uri" >&2
        exit 2
        ;;
esac
