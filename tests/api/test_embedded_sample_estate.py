"""The embedded platform as `estate run` starts it (every service in one process, the sample
estate loaded, migration's sample policy): migration serves its API with the sample policy and
has assessed every device inventory holds, by the gauges of devices by readiness. A tenth of the
sample estate (the same mix; all 45,500 took over 10 minutes on a loaded 2-core machine)."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import astuple

import httpx
import pytest

from services.inventory.sample_estate import EstateSize
from services.migration.sample_policy import sample_policy
from services.registry import create_app
from services.runtime.auth import Role
from services.runtime.settings import Settings
from tests.conftest import bearer

pytestmark = pytest.mark.asyncio
GAUGE = re.compile(r'^migration_devices\{readiness="(\w+)"\} (\S+)$', re.M)
WITHIN_S = 300.0
FRACTION = 0.1


async def test_the_embedded_platform_assesses_every_sample_device_under_the_sample_policy() -> None:
    settings = Settings()
    app = create_app(settings, None, setting_overrides={
        "load_sample_estate": True, "sample_estate_fraction": FRACTION, "counts_interval_s": 0.5})
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://estate.test",
            headers=bearer(settings, Role.READER), timeout=60) as http:
        policy = await http.get("/migration/policy")
        assert policy.status_code == 200, policy.text
        assert policy.json()["policy"]["target"] == {"family": "windows", "version": "8.1"}
        runtime = app.state.runtime
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WITHIN_S
        while (await http.get("/health/ready")).status_code != 200:  # 'loading' until the estate is in
            assert loop.time() < deadline, "the sample estate did not load in time"
            await asyncio.sleep(0.5)
        held = await runtime.store.collection("devices").find({}, projection=["kind", "os"])
        scope = {k.value for k in sample_policy().scope}
        applies = sum(1 for d in held if d["kind"] in scope and d["os"]["family"] == "windows")
        assert len(held) == sum(astuple(EstateSize().scaled(FRACTION))) and applies > 0
        by_readiness: Counter[str] = Counter()
        while True:
            text = (await http.get("/metrics")).text
            by_readiness = Counter({k: int(float(v)) for k, v in GAUGE.findall(text)})
            if sum(by_readiness.values()) >= len(held):
                break
            assert loop.time() < deadline, f"assessed {sum(by_readiness.values())} of {len(held)}: {by_readiness}"
            await asyncio.sleep(1)
        assert sum(by_readiness.values()) == len(held), by_readiness
        assert sum(n for k, n in by_readiness.items() if k != "out_of_scope") == applies, by_readiness
        assert by_readiness["upgrade_in_place"] > 0 and by_readiness["blocked"] > 0, by_readiness
        page = await http.get("/migration/devices", params={"limit": 5})
        assert page.status_code == 200 and all(d["readiness"] is not None for d in page.json()["items"]), page.text
