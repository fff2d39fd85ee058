"""The settings a scenario run on the real stack uses: the Kafka and MongoDB-wire store the
usual ``ESTATE_*`` variables name, in distributed mode, with a database and consumer groups of
its own (a fresh run must not count what a platform or an earlier run left there: its groups
start at the topics' end, and its database is new). Nothing else should write to the topics
while it runs: its groups would consume that too."""

from __future__ import annotations

import os
import secrets
import uuid

from services.runtime.settings import Mode, Settings


def real_stack_settings(run: str | None = None) -> Settings:
    """``run`` names the database (``estate_scenario_<run>``) and the consumer groups; a new
    one each call by default. The JWT secret is only for settings' sake: the scenario serves
    no HTTP."""
    run = run or uuid.uuid4().hex[:8]
    return Settings(mode=Mode.DISTRIBUTED, mongo_database=f"estate_scenario_{run}",
                    consumer_group_prefix=f"scenario-{run}.", kafka_client_id=f"estate-scenario-{run}",
                    jwt_secret=os.environ.get("ESTATE_JWT_SECRET") or secrets.token_hex(32))
