# syntax=docker/dockerfile:1
#
# One image for every estate service; the command says which service a container runs.
#
#   docker build -t estate-platform:local .
#   docker run --rm -p 127.0.0.1:8000:8000 estate-platform:local \
#       estate run --service platform --host 0.0.0.0 --port 8000
#
# `estate` is the project's console script (services.cli:app, see [project.scripts]).
# The default command runs the inventory service alone (ESTATE_MODE decides embedded or
# distributed adapters; docker-compose.yml sets distributed). The health check and EXPOSE assume
# port 8000: a container started on another port needs its own health check.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- build: install the project (runtime dependencies only, no dev extras) into a venv ----
# Every dependency at the version constraints.txt pins (the versions the tests passed with).
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/estate
WORKDIR /src
# README.md* keeps the build working if pyproject.toml ever names a readme (the glob may match nothing).
COPY pyproject.toml constraints.txt README.md* ./
COPY contracts ./contracts
COPY services ./services
RUN /opt/estate/bin/pip install . --constraint constraints.txt \
    && /opt/estate/bin/pip check

# ---- runtime: the venv and a non-root user, nothing else ----
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/estate/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN groupadd --system --gid 10001 estate \
    && useradd --system --uid 10001 --gid estate --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin estate

COPY --from=build /opt/estate /opt/estate

WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001

EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"]

CMD ["estate", "run", "--service", "inventory", "--host", "0.0.0.0", "--port", "8000", "--no-sample-estate"]
