"""Real events of every type, as each service makes them, to validate against the committed
schemas. One module per service, each with ``examples() -> list[Envelope]``; every module in
this package is read, so a new service adds its own module and touches nothing else."""

from __future__ import annotations

import importlib
import pkgutil

from contracts.envelope import Envelope


def all_examples() -> list[Envelope]:
    found: list[Envelope] = []
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        found += importlib.import_module(f"{__name__}.{module}").examples()
    return found
