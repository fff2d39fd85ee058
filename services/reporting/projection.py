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

The live consumer (store.py) applies an ``Outcome`` document by document; the replay
(``Fold``) applies the same outcomes in memory and writes the documents once at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
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
    """An event's effect: increments per dimension document, the same flattened into its day
    document, and the entity document to store."""

    event_id: str
    entity: dict[str, Any]
    dimensions: dict[str, Counters]
    day: str
    day_increments: Counters


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


def contribution_of(entity_doc: Mapping[str, Any] | None) -> Contribution:
    """The contribution an entity document records (as {d: document, f: field, v: value}
    entries, so that document ids and fields need no escaping; FerretDB stores no nested arrays)."""
    out: Contribution = {}
    for entry in (entity_doc or {}).get("contribution", ()):
        out.setdefault(entry["d"], {})[entry["f"]] = entry["v"]
    return out


def _entries(contribution: Contribution) -> list[dict[str, Any]]:
    return [{"d": d, "f": f, "v": v} for d in sorted(contribution) for f, v in sorted(contribution[d].items()) if v]


class Projector:
    """The rules by event type and the contribution of each kind of entity."""

    def __init__(self, rules: Mapping[str, Rule], contribute: Callable[[str, dict[str, Any]], Contribution]) -> None:
        self.rules = dict(rules)
        self._contribute = contribute

    def handles(self, event_type: str) -> bool:
        return event_type in self.rules

    def entity_of(self, event_type: str, data: Mapping[str, Any]) -> str:
        return self.rules[event_type].entity(data)

    def step(self, event_id: str, event_type: str, data: Mapping[str, Any], time: datetime,
             previous: Mapping[str, Any] | None) -> Outcome | None:
        """The outcome of one event given the entity's stored document; None when the event
        changes nothing (an older or repeated version, an event the entity has applied)."""
        rule = self.rules[event_type]
        if previous is not None and event_id in previous.get("events", ()):
            return None
        change = rule.apply(data, (previous or {}).get("state"), time)
        last = (previous or {}).get("version")
        if change.version is not None and last is not None and change.version <= last:
            return None
        old = contribution_of(previous)
        new = self._contribute(change.entity, change.state) if change.state is not None else {}
        dimensions = difference(old, new)
        day = day_id(change.at.date())
        increments = {flat(d, f): v for d, fields in dimensions.items() for f, v in fields.items()}
        if increments:
            dimensions.setdefault(CALENDAR, {})[change.at.date().isoformat()] = 1
        events = [] if change.version is not None else \
            [*list((previous or {}).get("events", ()))[-(ENTITY_EVENTS_KEPT - 1):], event_id]
        entity = {"_id": change.entity, "state": change.state, "version": change.version,
                  "contribution": _entries(new), "events": events}
        return Outcome(event_id, entity, dimensions, day, increments)


def add(into: dict[str, Counters], doc_id: str, fields: Mapping[str, float]) -> None:
    """Add counters; a counter that comes to zero is dropped (zero and absent are the same)."""
    target = into.setdefault(doc_id, {})
    for f, v in fields.items():
        total = target.get(f, 0) + v
        if total:
            target[f] = total
        else:
            target.pop(f, None)


@dataclass
class Fold:
    """The read model in memory: the replay folds every event here with the same rules, then
    the documents are written at once."""

    projector: Projector
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    dimensions: dict[str, Counters] = field(default_factory=dict)
    days: dict[str, Counters] = field(default_factory=dict)
    events: int = 0

    def apply(self, event_id: str, event_type: str, data: Mapping[str, Any], time: datetime) -> bool:
        if not self.projector.handles(event_type):
            return False
        entity = self.projector.entity_of(event_type, data)
        outcome = self.projector.step(event_id, event_type, data, time, self.entities.get(entity))
        self.events += 1
        if outcome is None:
            return False
        for doc_id, fields in outcome.dimensions.items():
            add(self.dimensions, doc_id, fields)
        if outcome.day_increments:
            add(self.days, outcome.day, outcome.day_increments)
        self.entities[entity] = outcome.entity
        return True

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
