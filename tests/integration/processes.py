"""Service processes of their own (``python -m uvicorn`` in a subprocess) on the
real Kafka and store, so a test can run two replicas, or kill one with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import httpx

from services.runtime.auth import Role
from services.runtime.settings import Settings
from tests.conftest import bearer
from tests.integration.conftest import free_port


@dataclass
class ServiceProcess:
    url: str
    process: subprocess.Popen[bytes]
    settings: Settings

    def client(self, role: Role = Role.WRITER) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=bearer(self.settings, role), timeout=120)

    def kill(self) -> None:
        """SIGKILL: no shutdown, nothing flushed, cleared or handed over."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def _env(settings: Settings) -> dict[str, str]:
    values = settings.model_dump(mode="json", exclude_none=True)
    return {**os.environ, **{f"ESTATE_{k.upper()}": str(v) for k, v in values.items()}}


async def start_service(settings: Settings, name: str = "inventory",
                        env_overrides: dict[str, str] | None = None) -> ServiceProcess:
    """The service ``name`` (from the registry) in a process of its own; ``env_overrides``
    sets a service's own settings (e.g. migration's ``ESTATE_WAVE_INTERVAL_S``)."""
    port = free_port()
    # As a process manager would start it: the factory applies the project's logging (JSON).
    command = [sys.executable, "-m", "uvicorn", f"services.asgi:{name}", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    env = {**_env(settings), "ESTATE_LOG_LEVEL": os.environ.get("ESTATE_TEST_LOG_LEVEL", "WARNING"),
           **(env_overrides or {})}
    process = subprocess.Popen(command, env=env)
    service = ServiceProcess(f"http://127.0.0.1:{port}", process, settings)
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            if process.poll() is not None:
                raise AssertionError(f"the {name} service process exited during start-up")
            try:
                if (await http.get(f"{service.url}/health/ready")).status_code == 200:
                    return service
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    service.kill()
    raise AssertionError(f"the {name} service process did not become ready")
