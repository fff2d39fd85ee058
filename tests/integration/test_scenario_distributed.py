"""The programme scenario on the real stack (Kafka + FerretDB): the same driver, all four
services on one runtime in distributed mode, a few simulated months at a small scale. Its
figures, from the reporting service fed by Kafka, are those of the embedded run of the same plan
and seed; what earlier runs left on the shared topics is not counted."""

from __future__ import annotations

from datetime import date

import pytest

from services.scenario.driver import run_scenario
from services.scenario.plan import ScenarioPlan, tranches
from tests.conftest import distributed_settings

pytestmark = pytest.mark.integration

PLAN = ScenarioPlan(scale=0.002, end=date(2014, 6, 15))
"""70 XP desktops among 89 devices; the camera pilot's delivery (8 May) and six weekly waves."""


def test_the_scenario_on_kafka_and_ferretdb_gives_the_embedded_figures(kafka_bootstrap: str, mongo_url: str) -> None:
    settings = distributed_settings(kafka_bootstrap, mongo_url, topic_partitions=3)
    real = run_scenario(PLAN, settings=settings)
    embedded = run_scenario(PLAN)

    assert real.legacy_by_day[PLAN.start] == 70  # 35,000 x 0.002, counted by reporting from Kafka
    assert real.legacy_by_day[PLAN.end] < 70  # waves migrated some
    assert real.legacy_by_day == embedded.legacy_by_day
    kinds = {row[0]: row[1] for row in real.kinds}
    assert kinds["body_worn_camera"] == sum(tranches(PLAN.scaled(1_000), 1))  # the pilot, bought and delivered
    assert real.kinds == embedded.kinds and real.deliveries == embedded.deliveries
    assert real.waves == embedded.waves and real.orders == embedded.orders
    assert real.events == embedded.events  # every event published once: no duplicate, none lost
