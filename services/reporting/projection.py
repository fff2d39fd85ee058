"""The projection machinery, pure: one event -> what it changes in the read model.

Every aggregate reporting follows (a device, a device's migration, a purchase, a contract,
a wave) is an *entity* with a small *state* and a *contribution*: the counters it adds to
dimension documents (``borough:Camden`` -> {legacy: 1, devices: 1}). An event gives the
entity a new state; what changes in the read model is the new contribution minus the old
one, so a device moving from XP to Windows 8.1 takes one from ``os:windows:XP`` and adds one
to ``os:windows:8.1`` exactly once. The same change is also written, flattened, into the
document of the day it happened (``day:2015-08-03``), so summing the day documents up to a
date gives every dimension as of that date.

Entities whose events carry a version (inventory's device snapshots, procurement's contract
and purchase snapshots) ignore a version not newer than the one applied; the others rely on
Kafka's per-key order and on the event ids an entity keeps.

Both the live consumer and the replay fold events in memory (``Fold``): the live one a batch
at a time onto the entities it loaded, applying the batch's increments in a few writes (see
store.py); the replay every event from nothing, writing the documents once at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

Counters = dict[str, float]
Contribution = dict[str, Counters]
"""Dimension document id -> field -> value."""

ENTITY_EVENTS_KEPT = 50
"""Event ids an entity without versions remembers (its redeliveries come within a few events)."""
CALENDAR = "calendar"
"""The dimension document whose fields are the days that have a day document."""


def escape(name: str) -> str:
    """A field name MongoDB and FerretDB store as given (no dots, no leading $)."""
    return name.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def unescape(name: str) -> str:
    return name.replace("%24", "$").replace("%2E", ".").replace("%25", "%")


def day_id(day: date) -> str:
    return f"day:{day.isoformat()}"


def flat(doc_id: str, field_name: str) -> str:
    """A dimension's field as a day document's field: ``borough:Camden|legacy``."""
    return f"{doc_id}|{field_name}"


@dataclass(frozen=True, slots=True)
class Change:
    """What a rule decides: the entity's new state (None: it contributes nothing now)."""

    entity: str
    state: dict[str, Any] | None
    version: int | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Rule:
    """How one event type moves one entity: ``entity(data)`` names it, ``apply(data, previous
    state, event time)`` decides its new state."""

    entity: Callable[[Mapping[str, Any]], str]
    apply: Callable[[Mapping[str, Any], dict[str, Any] | None, datetime], Change]


@dataclass(frozen=True, slots=True)
class Outcome:
    """An event's effect: the entity document to store, and the change it makes to the
    dimension documents on ``day`` (``Projector.deltas[delta]``; -1: none)."""

    event_id: str
    entity: dict[str, Any]
    delta: int
    day: date


def difference(old: Contribution, new: Contribution) -> dict[str, Counters]:
    """new - old, per document and field; zero changes left out."""
    out: dict[str, Counters] = {}
    for doc_id in old.keys() | new.keys():
        before, after = old.get(doc_id, {}), new.get(doc_id, {})
        fields = {f: after.get(f, 0) - before.get(f, 0) for f in before.keys() | after.keys()}
        fields = {f: v for f, v in fields.items() if v}
        if fields:
            out[doc_id] = fields
    return out


def _frozen(value: Any) -> Any:
    """A hashable copy of a JSON-like value (the key contributions are remembered by)."""
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


Delta = tuple[dict[str, Counters], Counters]
"""What moving an entity from one state to another changes: per dimension document, and the
same flattened (``borough:Camden|legacy``) for the day document."""


class Projector:
    """The rules by event type and the contribution of each kind of entity.

    An entity's contribution is a pure function of its state, so it is not stored: it is
    computed again from the stored state (and remembered by state, as is the difference
    between two states: most events move an entity between a few dozen distinct states)."""

    def __init__(self, rules: Mapping[str, Rule], contribute: Callable[[str, dict[str, Any]], Contribution]) -> None:
        self.rules = dict(rules)
        self._contribute = contribute
        self._by_state: dict[tuple[str, Any], int] = {}
        self._by_contribution: dict[Any, int] = {}
        self._contributions: list[Contribution] = []
        self._index: dict[tuple[int, int], int] = {}
        self.deltas: list[Delta] = []

    def handles(self, event_type: str) -> bool:
        return event_type in self.rules

    def entity_of(self, event_type: str, data: Mapping[str, Any]) -> str:
        return self.rules[event_type].entity(data)

    def contribution(self, entity: str, state: dict[str, Any] | None) -> Contribution:
        return self._contribute(entity, state) if state is not None else {}

    def _contribution_index(self, kind: str, entity: str, state: dict[str, Any] | None) -> int:
        """The index of the state's contribution among the distinct ones seen (states that
        differ only in what contributes nothing, e.g. a device's site, share one)."""
        try:  # flat states (devices, purchases...) are their own key; the others are frozen
            key: tuple[str, Any] = (kind, state and tuple(state.items()))
            known = self._by_state.get(key)
        except TypeError:
            key = (kind, _frozen(state))
            known = self._by_state.get(key)
        if known is None:
            contribution = self.contribution(entity, state)
            known = self._by_contribution.setdefault(_frozen(contribution), len(self._by_contribution))
            if known == len(self._contributions):
                self._contributions.append(contribution)
            if len(self._by_state) > 200_000:
                self._by_state.clear()  # bounded; the indexes stay valid
            self._by_state[key] = known
        return known

    def delta(self, entity: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> int:
        """The index in ``deltas`` of what moving ``entity`` from ``old`` to ``new`` changes
        (-1: nothing)."""
        kind = entity.split(":", 1)[0]
        pair = (self._contribution_index(kind, entity, old), self._contribution_index(kind, entity, new))
        known = self._index.get(pair)
        if known is None:
            dimensions = difference(self._contributions[pair[0]], self._contributions[pair[1]])
            if dimensions:
                flattened = {flat(d, f): v for d, fields in dimensions.items() for f, v in fields.items()}
                self.deltas.append((dimensions, flattened))
                known = len(self.deltas) - 1
            else:
                known = -1
            self._index[pair] = known
        return known

    def step(self, event_id: str, event_type: str, data: Mapping[str, Any], time: datetime,
             previous: Mapping[str, Any] | None) -> Outcome | None:
        """The outcome of one event given the entity's stored document; None when the event
        changes nothing (an older or repeated version, an event the entity has applied)."""
        rule = self.rules[event_type]
        if previous is not None and event_id in previous.get("events", ()):
            return None
        old_state = previous.get("state") if previous is not None else None
        change = rule.apply(data, old_state, time)
        if change.version is not None and previous is not None:
            last = previous.get("version")
            if last is not None and change.version <= last:
                return None
        if change.version is not None:
            events: list[str] = []
        else:
            events = [*list((previous or {}).get("events", ()))[-(ENTITY_EVENTS_KEPT - 1):], event_id]
        entity = {"_id": change.entity, "state": change.state, "version": change.version, "events": events}
        return Outcome(event_id, entity, self.delta(change.entity, old_state, change.state), change.at.date())


def add(into: dict[str, Counters], doc_id: str, fields: Mapping[str, float]) -> None:
    """Add counters; a counter that comes to zero is dropped (zero and absent are the same)."""
    target = into.get(doc_id)
    if target is None:
        target = into[doc_id] = {}
    for f, v in fields.items():
        total = target.get(f, 0) + v
        if total:
            target[f] = total
        else:
            target.pop(f, None)


class Fold:
    """Events folded in memory with the rules: the entities' documents, and the increments to
    every dimension and day document. The replay folds every event from nothing and writes the
    documents at once; the live consumer folds a batch onto the entities it loaded and applies
    the increments (``changed`` names the entities the batch moved).

    An event only counts its (change, day) pair; the counters are summed when read."""

    def __init__(self, projector: Projector, entities: dict[str, dict[str, Any]] | None = None) -> None:
        self.projector = projector
        self.entities: dict[str, dict[str, Any]] = entities if entities is not None else {}
        self.events = 0
        self.changed: set[str] = set()
        self._pending: dict[tuple[int, date], int] = {}
        self._dimensions: dict[str, Counters] = {}
        self._days: dict[str, Counters] = {}

    def apply(self, event_id: str, event_type: str, data: Mapping[str, Any], time: datetime) -> bool:
        projector = self.projector
        if not projector.handles(event_type):
            return False
        entity = projector.entity_of(event_type, data)
        outcome = projector.step(event_id, event_type, data, time, self.entities.get(entity))
        self.events += 1
        if outcome is None:
            return False
        if outcome.delta >= 0:
            key = (outcome.delta, outcome.day)
            self._pending[key] = self._pending.get(key, 0) + 1
        self.entities[entity] = outcome.entity
        self.changed.add(entity)
        return True

    def _flush(self) -> None:
        deltas = self.projector.deltas
        per_delta: dict[int, int] = {}
        calendar: Counters = {}
        for (index, day), times in sorted(self._pending.items()):
            per_delta[index] = per_delta.get(index, 0) + times
            iso = day.isoformat()
            calendar[iso] = calendar.get(iso, 0) + times
            flattened = deltas[index][1]
            add(self._days, day_id(day), flattened if times == 1 else {f: v * times for f, v in flattened.items()})
        for index, times in per_delta.items():
            for doc_id, fields in deltas[index][0].items():
                add(self._dimensions, doc_id, {f: v * times for f, v in fields.items()})
        if calendar:
            add(self._dimensions, CALENDAR, calendar)
        self._pending.clear()

    @property
    def dimensions(self) -> dict[str, Counters]:
        """Increments per dimension document (with ``calendar``: changes per day)."""
        self._flush()
        return self._dimensions

    @property
    def days(self) -> dict[str, Counters]:
        """Increments per day document, flattened."""
        self._flush()
        return self._days

    def apply_all(self, events: Iterable[tuple[str, str, Mapping[str, Any], datetime]]) -> None:
        for event in events:
            self.apply(*event)


def as_of(days: Iterable[tuple[str, Counters]], until: date) -> dict[str, Counters]:
    """Every dimension as of the end of ``until``: the day documents up to it, summed."""
    out: dict[str, Counters] = {}
    last = day_id(until)
    for doc_id, fields in days:
        if doc_id > last:
            continue
        for name, value in fields.items():
            dimension, _, field_name = name.rpartition("|")
            add(out, dimension, {field_name: value})
    return {d: {f: v for f, v in fs.items() if v} for d, fs in out.items()}


def series(days: Iterable[tuple[str, Counters]], fields: Iterable[str], start: date | None = None,
           until: date | None = None) -> list[tuple[date, Counters]]:
    """A daily series of flattened fields (e.g. ``estate|legacy``): their running totals at
    the end of each day from the first day with a change (or ``start``) to ``until``."""
    wanted = list(fields)
    by_day = sorted((date.fromisoformat(d.removeprefix("day:")), fs) for d, fs in days)
    if not by_day:
        return []
    first = start or by_day[0][0]
    last = until or by_day[-1][0]
    totals = dict.fromkeys(wanted, 0.0)
    out: list[tuple[date, Counters]] = []
    index = 0
    day = min(first, by_day[0][0])
    while day <= last:
        while index < len(by_day) and by_day[index][0] == day:
            for name in wanted:
                totals[name] += by_day[index][1].get(name, 0)
            index += 1
        if day >= first:
            out.append((day, dict(totals)))
        day += timedelta(days=1)
    return out
