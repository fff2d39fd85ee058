#!/usr/bin/env bash
# The whole test suite against real infrastructure: starts Kafka and FerretDB on 127.0.0.1
# (installing them, and Debian's prometheus and chromium packages, on first use), runs pytest, and stops them again whatever happens.
# If either cannot start, this fails: integration tests are never skipped.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
cd "$REPO"

stop_all() {
  bash "$HERE/kafka.sh" stop || true
  bash "$HERE/ferretdb.sh" stop || true
}
trap stop_all EXIT

# Install both in parallel (the first run builds FerretDB and fetches Kafka's jars).
bash "$HERE/kafka.sh" install & kafka_install=$!
bash "$HERE/ferretdb.sh" install & ferret_install=$!
# promtool and prometheus (Debian's package) for tests/deploy and the real-Prometheus test.
bash "$HERE/prometheus.sh" install & prometheus_install=$!
# kustomize (built from the Go module proxy) for the Kubernetes manifests' test.
bash "$HERE/kustomize.sh" install & kustomize_install=$!
# Debian's chromium for the report page's headless-browser test and `estate report --pdf/--png`.
bash "$HERE/chromium.sh" install & chromium_install=$!
wait "$kafka_install" || { echo "Kafka could not be installed" >&2; exit 1; }
wait "$ferret_install" || { echo "FerretDB could not be installed" >&2; exit 1; }
wait "$prometheus_install" || { echo "Prometheus could not be installed" >&2; exit 1; }
wait "$kustomize_install" || { echo "kustomize could not be built" >&2; exit 1; }
wait "$chromium_install" || { echo "chromium could not be installed or does not start headless" >&2; exit 1; }

bash "$HERE/ferretdb.sh" start
bash "$HERE/kafka.sh" start

export ESTATE_TEST_KAFKA="127.0.0.1:${KAFKA_PORT:-39092}"
export ESTATE_TEST_MONGO="mongodb://127.0.0.1:${FERRETDB_PORT:-37017}/"
export ESTATE_REQUIRE_INFRA=1
"$PYTHON" -m pytest -q -p no:cacheprovider "$@"
