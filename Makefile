# Two commands do all the set-up on a fresh machine:
#   make run    the platform, embedded (in-process bus + embedded store), sample estate loaded
#   make test   the whole suite; installs and starts a real Kafka and FerretDB on 127.0.0.1
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
HOST   ?= 127.0.0.1

.PHONY: install run test unit infra-up infra-down lint typecheck contracts constraints bench bench-crash clean

# constraints.txt pins every package (the Dockerfile installs with it too). After changing
# the dependencies in pyproject.toml, regenerate it from a fresh venv: make constraints
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/estate run --host $(HOST) --port $(PORT)

# Lint and types first (seconds), then every test on the real Kafka and FerretDB.
test: install lint typecheck
	PYTHON=$(PY) bash deploy/local/test.sh

# The fast part only: no Kafka, no store server (the suite above runs these too).
unit: install
	bash deploy/local/prometheus.sh install
	bash deploy/local/kustomize.sh install
	bash deploy/local/chromium.sh install
	$(PY) -m pytest -q -m "not integration"

infra-up: install
	PYTHON=$(PY) bash deploy/local/kafka.sh start
	PYTHON=$(PY) bash deploy/local/ferretdb.sh start

infra-down:
	-bash deploy/local/kafka.sh stop
	-bash deploy/local/ferretdb.sh stop

lint: install
	$(VENV)/bin/ruff check services contracts tools tests benchmarks

typecheck: install
	$(VENV)/bin/mypy

# Re-pin every package to the newest versions pyproject.toml allows, in a throw-away venv.
constraints:
	rm -rf .constraints-venv
	$(PYTHON) -m venv .constraints-venv
	.constraints-venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .constraints-venv/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .constraints-venv

contracts: install
	$(PY) -m tools.contracts

bench: install infra-up
	$(PY) benchmarks/import_35k.py
	$(PY) benchmarks/versioned_write.py

# Several minutes: kills the service at three points of a 45,500-row import, counts duplicates.
bench-crash: install infra-up
	cd benchmarks && ../$(PY) crash_duplicates.py

clean: infra-down
	rm -rf .local .pytest_cache
