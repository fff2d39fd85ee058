"""How saga steps are carried out: an interface, and the simulated executor the embedded run,
tests and benchmarks use (durations and failure rates configurable, outcomes seeded)."""

from __future__ import annotations

import random
from typing import Protocol

from contracts.migration import SagaStep
from services.migration.domain import StepResult


class StepExecutor(Protocol):
    async def run(self, asset_tag: str, step: SagaStep, attempt: int) -> StepResult: ...


class SimulatedExecutor:
    """Each (device, step, attempt) draws its outcome from its own seeded generator, so a run
    is the same whatever order the steps run in, and a replayed step gets the same outcome."""

    def __init__(self, *, seed: int = 2014, duration_s: float = 0.0, failure_rate: float = 0.0,
                 failure_rates: dict[SagaStep, float] | None = None) -> None:
        if not 0.0 <= failure_rate <= 1.0 or duration_s < 0:
            raise ValueError("failure rates lie in [0, 1] and durations are not negative")
        self._seed = seed
        self._duration_s = duration_s
        self._rates = dict.fromkeys(SagaStep, failure_rate) | dict(failure_rates or {})

    async def run(self, asset_tag: str, step: SagaStep, attempt: int) -> StepResult:
        rng = random.Random(f"{self._seed}:{asset_tag}:{step.value}:{attempt}")
        duration = self._duration_s * (0.5 + rng.random()) if self._duration_s else 0.0
        if rng.random() < self._rates[step]:
            return StepResult(False, round(duration, 3), f"simulated {step.value} failure")
        return StepResult(True, round(duration, 3))
