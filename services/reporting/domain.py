"""What reporting reads from each service's events, pure: the rules that move entities and
what each kind of entity contributes to the read model's dimensions.

Dimensions (document ids): ``estate``; ``os:<family>:<version>``; ``borough:<name>`` (``central``
for the central units); ``kind:<kind>``; ``readiness:<outcome>``; ``blocker:<application>``;
``wave:<id>``; ``saga``; ``spend``; ``spend:framework:<name>``; ``spend:category:<c>``;
``spend:class:<legacy|modern>``; ``contracts:end:<YYYY-MM>``; ``deliveries:framework:<name>``;
``hardware:<arch>:<cores>:<ram_mb>:<disk_gb>`` (the legacy devices still in the estate, for
what-if planning with another target OS); ``policy:os:<family>:<version>`` (the policy's
lifecycle table).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from contracts.migration import Readiness
from services.reporting.projection import Change, Contribution, Projector, Rule
from services.reporting.retarget import hardware_key

LEGACY_OS = frozenset({("windows", "XP")})
"""The operating systems whose devices are legacy (extended support is paid for them)."""
CENTRAL = "central"
OUT_OF_ESTATE = ("retired", "disposed")
COMMITTED = ("ordered", "partially_delivered", "delivered")
PIPELINE = ("submitted", "approved")


def _when(value: str | None, fallback: datetime) -> datetime:
    return datetime.fromisoformat(value) if value else fallback


# -- inventory: devices -----------------------------------------------------------------------

def device_state(data: Mapping[str, Any], previous: dict[str, Any] | None, time: datetime) -> Change:
    d = data["device"]
    family, version = d["os"]["family"], d["os"]["version"]
    legacy = (family, version) in LEGACY_OS
    state = {
        "os": f"{family}:{version}", "kind": d["kind"], "borough": d["location"].get("borough") or CENTRAL,
        "site": d["location"]["site"], "lifecycle": d["state"], "legacy": legacy,
        "was_legacy": legacy or bool((previous or {}).get("was_legacy")),
    }
    hw = d.get("hardware")
    if hw:
        state["hardware"] = hardware_key(hw["cpu_arch"], hw["cpu_cores"], hw["ram_mb"], hw["disk_gb"])
    return Change(f"device:{d['asset_tag']}", state, int(d["version"]), _when(d.get("updated_at"), time))


def device_contribution(s: dict[str, Any]) -> Contribution:
    in_estate = s["lifecycle"] not in OUT_OF_ESTATE
    counters = {
        "devices": int(in_estate), "legacy": int(in_estate and s["legacy"]),
        "migrated": int(in_estate and s["lifecycle"] == "migrated"), "was_legacy": int(s["was_legacy"]),
        "retired": int(s["lifecycle"] == "retired"), "disposed": int(s["lifecycle"] == "disposed"),
    }
    counters = {k: v for k, v in counters.items() if v}
    out: Contribution = {"estate": dict(counters), f"borough:{s['borough']}": dict(counters),
                         f"kind:{s['kind']}": dict(counters)}
    if in_estate:
        out[f"os:{s['os']}"] = {"devices": 1}
        if s["legacy"] and s.get("hardware"):
            out[f"hardware:{s['hardware']}"] = {"legacy": 1}
    return out


# -- migration: readiness and the per-device saga ---------------------------------------------

def _migration_base(data: Mapping[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    base = dict(previous or {"outcome": None, "blockers": [], "saga": None, "wave": None,
                             "failures": {}, "rollbacks": 0})
    base.update(kind=data["kind"], site=data["site"], borough=data.get("borough") or CENTRAL)
    return base


def assessed(data: Mapping[str, Any], previous: dict[str, Any] | None, time: datetime) -> Change:
    s = _migration_base(data, previous)
    s["outcome"] = data["outcome"]
    s["blockers"] = sorted({a["name"] for a in data.get("blocking_applications", ())}) \
        if data["outcome"] == Readiness.BLOCKED else []
    return Change(f"migration:{data['asset_tag']}", s, None, _when(data["occurred_at"], time))


def saga_step(saga: str | None) -> Any:
    """A rule for a saga event: the device's saga state after it (None keeps it)."""

    def apply(data: Mapping[str, Any], previous: dict[str, Any] | None, time: datetime) -> Change:
        s = _migration_base(data, previous)
        if "wave_id" in data:
            s["wave"] = data["wave_id"]
        if saga is not None:
            s["saga"] = saga
        if "will_retry" in data:  # a failed step
            failures = dict(s["failures"])
            failures[data["step"]] = failures.get(data["step"], 0) + 1
            s["failures"] = failures
        if saga == "failed":
            s["rollbacks"] = s["rollbacks"] + 1
        if saga == "unscheduled":
            s["wave"] = None
        return Change(f"migration:{data['asset_tag']}", s, None, _when(data["occurred_at"], time))

    return apply


def migration_contribution(s: dict[str, Any]) -> Contribution:
    out: Contribution = {}
    if s["outcome"]:
        out[f"readiness:{s['outcome']}"] = {"devices": 1}
    blockers = s["blockers"]
    for app in blockers:
        fields: dict[str, float] = {"devices": 1}
        if len(blockers) == 1:  # fixing this application alone unblocks the device
            fields["unblocks"] = 1
            fields[f"site:{s['site']}"] = 1
            if s["wave"]:
                fields[f"wave:{s['wave']}"] = 1
        out[f"blocker:{app}"] = fields
    if s["wave"] and s["saga"]:
        out[f"wave:{s['wave']}"] = {s["saga"]: 1, "devices": 1}
    saga: dict[str, float] = {f"failed_step:{step}": n for step, n in s["failures"].items() if n}
    if s["rollbacks"]:
        saga["rolled_back"] = s["rollbacks"]
    if saga:
        out["saga"] = saga
    return out


# -- migration: waves and the policy ---------------------------------------------------------

WAVE_STATES = ("planned", "running", "paused", "cancelled", "completed")


def wave(data: Mapping[str, Any], previous: dict[str, Any] | None, time: datetime) -> Change:
    """A wave's life (no version: its events come in order on its key; a redelivery is caught
    by the event ids the entity keeps)."""
    s = dict(previous or {"wave_id": data["wave_id"], "state": "planned", "pilot": False, "daily_capacity": 0,
                          "expected_end": None, "start_date": None})
    s["state"] = data.get("state", "planned")
    for name in ("daily_capacity", "expected_end", "start_date", "pilot"):
        if name in data:
            s[name] = data[name]
    return Change(f"wave:{data['wave_id']}", s, None, _when(data["occurred_at"], time))


def _ordinal(day: str | None) -> int:
    return date.fromisoformat(day).toordinal() if day else 0


def wave_contribution(s: dict[str, Any]) -> Contribution:
    """``waves``: waves by state; ``wave:<id>``: the wave's state, capacity and expected end (as
    a day ordinal: dimension documents hold numbers), beside its devices' saga counts."""
    fields = {f"state:{s['state']}": 1, "daily_capacity": s["daily_capacity"],
              "expected_end_ordinal": _ordinal(s["expected_end"]), "pilot": int(bool(s["pilot"]))}
    return {"waves": {s["state"]: 1, "waves": 1}, f"wave:{s['wave_id']}": fields}


def policy(data: Mapping[str, Any], previous: dict[str, Any] | None, time: datetime) -> Change:
    target = data["target"]
    state = {"version": int(data["version"]), "target": f"{target['family']}:{target['version']}",
             "target_support_ends": data.get("target_support_ends"), "warning": data.get("warning") is not None,
             "blocking_applications": len(data.get("blocking_applications") or ()),
             "catalogue_size": int(data["catalogue_size"]),
             "minimum": [int(data.get(f) or 0) for f in ("min_ram_mb", "min_disk_gb", "min_cpu_cores")],
             "lifecycle": [{"os": f"{e['os']['family']}:{e['os']['version']}", "support_ends": e["support_ends"],
                            "min_ram_mb": int(e["min_ram_mb"]), "min_disk_gb": int(e["min_disk_gb"]),
                            "architectures": list(e["architectures"])} for e in data.get("lifecycle") or ()]}
    return Change("policy:current", state, int(data["version"]), _when(data["occurred_at"], time))


def policy_contribution(s: dict[str, Any]) -> Contribution:
    """``policy``: the version in force, the target's end of support (day ordinal), whether a
    longer-supported alternative was flagged, the catalogue's size and blocking applications;
    ``policy:target:<os>``: which target; the force's minimum; ``policy:os:<os>``: each row of
    the lifecycle table (end of support as a day ordinal, RAM and disk it needs, ``arch:<a>``
    for each architecture it runs on)."""
    ram, disk, cores = s.get("minimum") or (0, 0, 0)
    out: Contribution = {"policy": {"version": s["version"],
                                    "target_support_ends_ordinal": _ordinal(s["target_support_ends"]),
                                    "warning": int(s["warning"]), "catalogue_size": s["catalogue_size"],
                                    "blocking_applications": s["blocking_applications"], "min_ram_mb": ram,
                                    "min_disk_gb": disk, "min_cpu_cores": cores},
                         f"policy:target:{s['target']}": {"in_force": 1}}
    for e in s.get("lifecycle") or ():
        out[f"policy:os:{e['os']}"] = {"support_ends_ordinal": _ordinal(e["support_ends"]),
                                       "min_ram_mb": e["min_ram_mb"], "min_disk_gb": e["min_disk_gb"],
                                       **{f"arch:{a}": 1 for a in e["architectures"]}}
    return out


# -- procurement: purchases, contracts, deliveries --------------------------------------------

def purchase(data: Mapping[str, Any], previous: dict[str, Any] | None, time: datetime) -> Change:
    r = data["request"]
    state = {"state": r["state"], "value": r.get("value_pence") or 0, "framework": r["framework_name"],
             "category": r["category"], "class": r["classification"]}
    return Change(f"purchase:{r['request_id']}", state, int(r["version"]), _when(r.get("updated_at"), time))


def purchase_contribution(s: dict[str, Any]) -> Contribution:
    """What a request commits (ordered) or has in the pipeline (submitted, approved). What is
    delivered comes from the deliveries (``delivery_contribution``): procurement announces no
    purchase event after the order, so a request's snapshot never carries its deliveries."""
    if s["state"] in COMMITTED:
        fields = {"committed_pence": s["value"], "orders": 1}
    elif s["state"] in PIPELINE:
        fields = {"pipeline_pence": s["value"], "requests": 1}
    else:
        return {}
    return {"spend": dict(fields), f"spend:framework:{s['framework']}": dict(fields),
            f"spend:category:{s['category']}": dict(fields), f"spend:class:{s['class']}": dict(fields)}


def contract(data: Mapping[str, Any], previous: dict[str, Any] | None, time: datetime) -> Change:
    c = data["contract"]
    state = {"value": c["value_pence"], "end": c["end"], "framework": c["framework_name"],
             "class": c["classification"], "category": c["category"]}
    at = data.get("awarded_at") or data.get("varied_at")
    return Change(f"contract:{c['contract_id']}", state, int(c["version"]), _when(at, time))


def contract_contribution(s: dict[str, Any]) -> Contribution:
    fields = {"contracts": 1, "contracted_pence": s["value"]}
    return {"spend": {"contracted_pence": s["value"]}, f"spend:framework:{s['framework']}": dict(fields),
            f"spend:class:{s['class']}": {"contracted_pence": s["value"]},
            f"spend:category:{s['category']}": {"contracted_pence": s["value"]},
            f"contracts:end:{s['end'][:7]}": dict(fields)}


def delivery(data: Mapping[str, Any], previous: dict[str, Any] | None, time: datetime) -> Change:
    state = {"framework": data.get("framework_name") or data["framework"], "devices": len(data["devices"]),
             "value": data.get("value_pence") or 0, "category": data.get("category"),
             "class": data.get("classification")}
    return Change(f"delivery:{data['delivery_id']}", state, None, _when(data["received_at"], time))


def delivery_contribution(s: dict[str, Any]) -> Contribution:
    """The delivery in the deliveries table, and its value as delivered spend (by framework,
    and by category and legacy/modern where the delivery says)."""
    fields = {"deliveries": 1, "devices": s["devices"], "value_pence": s["value"]}
    out: Contribution = {f"deliveries:framework:{s['framework']}": fields, "deliveries": dict(fields)}
    if s["value"]:
        spent = {"delivered_pence": s["value"]}
        out["spend"] = dict(spent)
        out[f"spend:framework:{s['framework']}"] = dict(spent)
        if s.get("category"):
            out[f"spend:category:{s['category']}"] = dict(spent)
        if s.get("class"):
            out[f"spend:class:{s['class']}"] = dict(spent)
    return out


# -- the projector ------------------------------------------------------------------------------

CONTRIBUTIONS = {"device": device_contribution, "migration": migration_contribution,
                 "wave": wave_contribution, "policy": policy_contribution,
                 "purchase": purchase_contribution, "contract": contract_contribution,
                 "delivery": delivery_contribution}


def contribute(entity: str, state: dict[str, Any]) -> Contribution:
    kind = entity.split(":", 1)[0]
    contribution = CONTRIBUTIONS[kind](state)
    return {d: {f: v for f, v in fields.items() if v} for d, fields in contribution.items()}


def _by_device(data: Mapping[str, Any]) -> str:
    return f"device:{data['device']['asset_tag']}"


def _by_migration(data: Mapping[str, Any]) -> str:
    return f"migration:{data['asset_tag']}"


def _by_wave(data: Mapping[str, Any]) -> str:
    return f"wave:{data['wave_id']}"


def _by_policy(data: Mapping[str, Any]) -> str:
    return "policy:current"


def _by_purchase(data: Mapping[str, Any]) -> str:
    return f"purchase:{data['request']['request_id']}"


def _by_contract(data: Mapping[str, Any]) -> str:
    return f"contract:{data['contract']['contract_id']}"


def _by_delivery(data: Mapping[str, Any]) -> str:
    return f"delivery:{data['delivery_id']}"


RULES: dict[str, Rule] = {
    **{f"inventory.device.{t}.v1": Rule(_by_device, device_state)
       for t in ("registered", "updated", "state_changed", "retired", "disposed")},
    "migration.device.assessed.v1": Rule(_by_migration, assessed),
    "migration.device.scheduled.v1": Rule(_by_migration, saga_step("scheduled")),
    "migration.device.unscheduled.v1": Rule(_by_migration, saga_step("unscheduled")),
    "migration.device.started.v1": Rule(_by_migration, saga_step("in_progress")),
    "migration.device.step_completed.v1": Rule(_by_migration, saga_step(None)),
    "migration.device.step_failed.v1": Rule(_by_migration, saga_step(None)),
    "migration.device.step_retried.v1": Rule(_by_migration, saga_step(None)),
    "migration.device.rolled_back.v1": Rule(_by_migration, saga_step("failed")),
    "migration.device.migrated.v1": Rule(_by_migration, saga_step("migrated")),
    **{f"migration.wave.{t}.v1": Rule(_by_wave, wave)
       for t in ("planned", "started", "paused", "resumed", "cancelled", "completed")},
    "migration.policy.changed.v1": Rule(_by_policy, policy),
    **{f"procurement.purchase.{t}.v1": Rule(_by_purchase, purchase)
       for t in ("requested", "approved", "rejected", "ordered")},
    **{f"procurement.contract.{t}.v1": Rule(_by_contract, contract) for t in ("awarded", "varied", "expiring")},
    "procurement.delivery.received.v1": Rule(_by_delivery, delivery),
}


def projector() -> Projector:
    return Projector(RULES, contribute)
