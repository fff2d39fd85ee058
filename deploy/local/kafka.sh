#!/usr/bin/env bash
# A real Apache Kafka broker (one combined KRaft broker+controller node) on 127.0.0.1,
# for integration tests and local runs. Needs Java 17+, Maven and the project venv
# (aiokafka); fetches Kafka's jars from the Maven repository into a cache.
#
#   deploy/local/kafka.sh install   fetch the jars into the cache (quick when cached)
#   deploy/local/kafka.sh start     install, then start a broker on FRESH data and wait
#                                   until it answers metadata (no-op if already up)
#   deploy/local/kafka.sh stop      stop it (TERM, then KILL after KAFKA_STOP_TIMEOUT s)
#   deploy/local/kafka.sh status    exit 0 if running and answering
#
# Environment (all optional):
#   ESTATE_CACHE_DIR       jar cache root       (default ~/.cache/estate-platform)
#   ESTATE_STATE_DIR       state root           (default <repo>/.local); uses ./kafka in it
#   KAFKA_PORT             client port          (default 39092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default 39093)
#   KAFKA_HEAP             JVM heap flags       (default "-Xmx512m -Xms256m")
#   KAFKA_START_TIMEOUT    seconds to wait for metadata per attempt (default 120)
#   KAFKA_STOP_TIMEOUT     seconds before TERM escalates to KILL (default 20)
#   PYTHON                 interpreter with aiokafka (default <repo>/.venv/bin/python)
#   JAVA, MVN              java / mvn executables
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"
LOG4J2_CONFIG="$SCRIPT_DIR/kafka/log4j2.properties"
READY_PY="$SCRIPT_DIR/kafka_ready.py"

KAFKA_VERSION="$(sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' "$POM" | head -n1)"
[[ -n "$KAFKA_VERSION" ]] || { echo "kafka.sh: cannot read <kafka.version> from $POM" >&2; exit 1; }

CACHE_DIR="${ESTATE_CACHE_DIR:-$HOME/.cache/estate-platform}/kafka-$KAFKA_VERSION"
LIBS_DIR="$CACHE_DIR/libs"
MARKER="$CACHE_DIR/.installed"

STATE_DIR="${ESTATE_STATE_DIR:-$REPO_ROOT/.local}/kafka"
DATA_DIR="$STATE_DIR/data"
LOG_DIR="$STATE_DIR/logs"
PID_FILE="$STATE_DIR/kafka.pid"
CONFIG="$STATE_DIR/server.properties"
CONSOLE_LOG="$LOG_DIR/kafka.out"

PORT="${KAFKA_PORT:-39092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-39093}"
BOOTSTRAP="127.0.0.1:$PORT"
HEAP="${KAFKA_HEAP:--Xmx512m -Xms256m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-20}"
PY="${PYTHON:-$REPO_ROOT/.venv/bin/python}"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"

log() { echo "kafka.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- install

# The marker holds the pom's checksum, so editing the pom (same Kafka version)
# invalidates the cache too. It is written only after a complete, checked copy.
pom_digest() { sha256sum "$POM" | cut -d' ' -f1; }

installed() {
  [[ -f "$MARKER" && -f "$LIBS_DIR/kafka_2.13-$KAFKA_VERSION.jar" ]] &&
    [[ "$(cat "$MARKER")" == "$(pom_digest)" ]]
}

do_install() {
  if installed; then
    return 0
  fi
  command -v "$MVN" >/dev/null || die "maven ('$MVN') not found"
  mkdir -p "$CACHE_DIR"
  # Serialise concurrent installs into the same cache.
  exec 8>"$CACHE_DIR/.lock"
  if command -v flock >/dev/null; then flock 8; fi
  if installed; then
    exec 8>&-
    return 0
  fi
  log "installing Kafka $KAFKA_VERSION jars into $LIBS_DIR"
  local tmp="$CACHE_DIR/libs.tmp.$$"
  rm -rf "$tmp"
  # Maven's output is kept aside (Debian's mvn 3.8 prints stray ANSI resets even with
  # -q -B) and shown only when it fails.
  local mvn_log="$CACHE_DIR/mvn.log"
  if ! "$MVN" -q -B -f "$POM" -Dkafka.libs.dir="$tmp" package >"$mvn_log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$mvn_log" >&2
    rm -rf "$tmp"
    die "maven could not fetch Kafka $KAFKA_VERSION (output above)"
  fi
  local jar
  for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-clients-$KAFKA_VERSION.jar"; do
    [[ -f "$tmp/$jar" ]] || { rm -rf "$tmp"; die "$jar missing after maven copy"; }
  done
  compgen -G "$tmp/log4j-slf4j*-impl-*.jar" >/dev/null ||
    { rm -rf "$tmp"; die "no SLF4J->log4j2 binding jar after maven copy"; }
  rm -f "$MARKER"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
  pom_digest >"$MARKER"
  exec 8>&-
  log "installed $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars"
}

# ---------------------------------------------------------------- process helpers

read_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  echo "$pid"
}

# Alive and really our broker (guards against a recycled pid).
is_our_broker() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

running_pid() {
  local pid
  pid="$(read_pid)" || return 1
  is_our_broker "$pid" || return 1
  echo "$pid"
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

check_python() {
  [[ -x "$PY" ]] || die "python '$PY' not found (create the venv, or set PYTHON)"
  "$PY" -c 'import aiokafka' 2>/dev/null ||
    die "'$PY' cannot import aiokafka (install the project's dependencies, or set PYTHON)"
}

ready() { # ready TIMEOUT [PID]
  local args=("$BOOTSTRAP" --timeout "$1")
  if [[ -n "${2:-}" ]]; then args+=(--pid "$2"); fi
  "$PY" "$READY_PY" "${args[@]}"
}

show_logs() {
  local f
  for f in "$LOG_DIR/server.log" "$CONSOLE_LOG"; do
    if [[ -s "$f" ]]; then
      echo "----- tail of $f -----" >&2
      tail -n 60 "$f" >&2
    fi
  done
  echo "-----" >&2
}

# ---------------------------------------------------------------- stop

do_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping broker (pid $pid)"
  # setsid made the broker its own process-group leader: signal the whole group.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= STOP_TIMEOUT * 10)); then
      log "still running after ${STOP_TIMEOUT}s, sending KILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      local k=0
      while kill -0 "$pid" 2>/dev/null && ((k < 100)); do sleep 0.1; k=$((k + 1)); done
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    die "broker (pid $pid) did not exit"
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

# ---------------------------------------------------------------- start

write_config() {
  cat >"$CONFIG" <<EOF
# Generated by deploy/local/kafka.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR

num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4

auto.create.topics.enable=true
delete.topic.enable=true
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
}

java_opts() {
  # shellcheck disable=SC2206 # HEAP is a list of flags on purpose
  local heap=($HEAP)
  printf '%s\n' "${heap[@]}" \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$LOG4J2_CONFIG" \
    "-Dkafka.logs.dir=$LOG_DIR"
}

launch() {
  rm -rf "$DATA_DIR" "$LOG_DIR"
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  write_config
  local opts=()
  mapfile -t opts < <(java_opts)

  local cluster_id
  # A random id in base64url; passed as --cluster-id=ID, because one in 32 starts with '-' and
  # would be read as an option (seen: "argument --cluster-id/-t: expected one argument").
  cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  if ! "$JAVA" "${opts[@]}" -cp "$LIBS_DIR/*" kafka.tools.StorageTool format \
    --cluster-id="$cluster_id" -c "$CONFIG" >"$LOG_DIR/format.out" 2>&1; then
    cat "$LOG_DIR/format.out" >&2
    die "formatting the KRaft storage failed"
  fi

  # setsid: own session and process group (stop signals the group); nohup: survives
  # the calling shell. In a non-interactive shell setsid execs directly, so $! is java.
  setsid nohup "$JAVA" "${opts[@]}" -cp "$LIBS_DIR/*" kafka.Kafka "$CONFIG" \
    >"$CONSOLE_LOG" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
}

do_start() {
  local pid
  if pid="$(running_pid)"; then
    check_python
    if ready 15 "$pid" >/dev/null 2>&1; then
      log "already running (pid $pid) on $BOOTSTRAP"
      return 0
    fi
    log "broker (pid $pid) is not answering; restarting it"
    do_stop
  fi
  rm -f "$PID_FILE"

  do_install
  check_python
  command -v "$JAVA" >/dev/null || die "java ('$JAVA') not found"
  local p
  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_in_use "$p"; then
      die "port 127.0.0.1:$p is already in use by another process"
    fi
  done
  mkdir -p "$STATE_DIR"

  local attempt started
  for attempt in 1 2; do
    started=$SECONDS
    log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (attempt $attempt, fresh data in $DATA_DIR)"
    launch
    pid="$(read_pid)"
    if ready "$START_TIMEOUT" "$pid"; then
      log "up (pid $pid) after $((SECONDS - started))s; logs in $LOG_DIR"
      return 0
    fi
    log "broker did not become ready (attempt $attempt)"
    show_logs
    do_stop || true
  done
  die "Kafka did not start on $BOOTSTRAP; logs in $LOG_DIR"
}

do_status() {
  local pid
  if ! pid="$(running_pid)"; then
    echo "kafka: not running"
    return 1
  fi
  check_python
  if ready 10 "$pid" >/dev/null 2>&1; then
    echo "kafka: running (pid $pid) on $BOOTSTRAP"
    return 0
  fi
  echo "kafka: process $pid is running but $BOOTSTRAP does not answer"
  return 1
}

case "${1:-}" in
  install) do_install ;;
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *)
    echo "usage: $0 install|start|stop|status" >&2
    exit 2
    ;;
esac
