"""Procurement rules: term limits, the 10% variation rule, approval thresholds, no
self-approval, no approving twice, spend-control hold, budget refusal with figures, partial
deliveries, and the notice window announced once per window."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from contracts.common import DeviceKind, Location, OperatingSystem, OsFamily
from contracts.procurement import ApprovalKind, AwardRoute, NeedLine, RequestState, SpendCategory, SpendClass
from services.procurement import budget as budget_rules
from services.procurement import domain, purchases
from services.procurement.budget import BudgetLine
from services.procurement.domain import AwardSpec, RuleBroken, StateConflict, Variation
from services.procurement.purchases import DeliveryNote, RequestSpec, Submission, Thresholds
from services.procurement.sample_data import budget_lines, frameworks

NOW = datetime(2015, 8, 3, 9, 0, tzinfo=UTC)
THRESHOLDS = Thresholds(single_approver=10_000_000, board=100_000_000, spend_control=500_000_000)
FRAMEWORKS = {f.framework_id: domain.new_framework(f) for f in frameworks()}
SPRINT = FRAMEWORKS["SPRINT-II"]


def award_spec(**overrides: object) -> AwardSpec:
    values: dict[str, object] = {
        "contract_id": "CO-1", "title": "Laptops", "framework_id": "SPRINT-II",
        "lot": "Lot 1: IT equipment", "supplier": "Dell",
        "category": SpendCategory.END_USER_DEVICES, "classification": SpendClass.MODERN,
        "route": AwardRoute.FURTHER_COMPETITION, "value_pence": 100_000_000, "start": date(2015, 4, 1),
        "initial_term_months": 24}
    return AwardSpec(**(values | overrides))  # type: ignore[arg-type]


def contract(**overrides: object) -> domain.CallOff:
    spec = award_spec(**overrides)
    return domain.award(spec, FRAMEWORKS[spec.framework_id], NOW).value


def submitted(value_each: int = 899_00, quantity: int = 2, by: str = "buyer") -> purchases.PurchaseRequest:
    draft = purchases.draft("PR-1", RequestSpec(kind=DeviceKind.LAPTOP, quantity=quantity, framework_id="SPRINT-II"),
                         SPRINT, NOW)
    details = Submission(model="Latitude", unit_price_pence=value_each)
    return purchases.submit(draft, details, by, contract(), THRESHOLDS, NOW).value


# -- terms and variations -------------------------------------------------------------------


def test_award_ends_the_day_before_the_term_is_up_and_announces_the_contract() -> None:
    change = domain.award(award_spec(), SPRINT, NOW)
    assert change.value.end == date(2017, 3, 31)
    [(name, event)] = change.events
    assert name == "procurement.contract.awarded.v1"
    assert event.contract.framework_name == "Sprint ii"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("framework_id", "lot", "category", "longest"), [
    ("GCLOUD-5", "Lot 3: Cloud support", SpendCategory.SUPPORT, 24),
    ("GCLOUD-12", "Lot 4: Cloud migration", SpendCategory.MIGRATION_SERVICES, 36),
])
def test_a_term_over_the_frameworks_initial_maximum_is_refused(framework_id: str, lot: str,
                                                                category: SpendCategory, longest: int) -> None:
    spec = award_spec(framework_id=framework_id, lot=lot, category=category, route=AwardRoute.DIRECT_AWARD,
                      start=date(2021, 1, 1), initial_term_months=longest + 1)
    with pytest.raises(RuleBroken, match="term limit") as refused:
        domain.award(spec, FRAMEWORKS[framework_id], NOW)
    assert refused.value.field == "initial_term_months"
    assert domain.award(spec.model_copy(update={"initial_term_months": longest}), FRAMEWORKS[framework_id], NOW)


def test_a_lot_buys_only_its_categories_by_its_routes() -> None:
    with pytest.raises(RuleBroken, match="may not buy hosting") as wrong_category:
        domain.award(award_spec(category=SpendCategory.HOSTING), SPRINT, NOW)
    assert wrong_category.value.field == "category"
    g5 = FRAMEWORKS["GCLOUD-5"]
    spec = award_spec(framework_id="GCLOUD-5", lot="Lot 1: Cloud hosting", category=SpendCategory.HOSTING,
                      route=AwardRoute.FURTHER_COMPETITION)
    with pytest.raises(RuleBroken, match="does not allow further_competition"):
        domain.award(spec, g5, NOW)


def test_extensions_stop_at_the_frameworks_options() -> None:
    c = contract()
    for expected_end in (date(2018, 3, 31), date(2019, 3, 31)):
        c = domain.vary(c, Variation(extend=True, reason="more time"), SPRINT, NOW).value
        assert c.end == expected_end
    assert (c.extensions_used, c.extension_months_used) == (2, 24)
    with pytest.raises(RuleBroken, match="term limit: Sprint ii allows 2 extension") as refused:
        domain.vary(c, Variation(extend=True, reason="more time"), SPRINT, NOW)
    assert refused.value.field == "extend"


def test_the_ten_percent_rule_counts_from_the_awarded_value_across_variations() -> None:
    c = contract(value_pence=1000_00)
    c = domain.vary(c, Variation(value_pence=1050_00, reason="a few more"), SPRINT, NOW).value
    c = domain.vary(c, Variation(value_pence=1100_00, reason="exactly 10%"), SPRINT, NOW).value
    with pytest.raises(RuleBroken, match=r"10% variation rule: .* 10\.0% over its awarded GBP 1,000\.00") as refused:
        domain.vary(c, Variation(value_pence=1100_01, reason="a penny more"), SPRINT, NOW)
    assert refused.value.field == "value_pence"
    assert c.version == 3


def test_a_variation_that_changes_nothing_announces_nothing() -> None:
    c = contract()
    assert not domain.vary(c, Variation(value_pence=c.value_pence, reason="same"), SPRINT, NOW).changed


# -- the notice window ----------------------------------------------------------------------


def test_the_notice_window_is_announced_once_and_again_after_an_extension() -> None:
    c = contract()  # ends 2017-03-31; 180 days before is 2016-10-02
    assert not domain.check_expiry(c, date(2016, 10, 1), 180).changed
    first = domain.check_expiry(c, date(2016, 10, 2), 180)
    [(name, event)] = first.events
    assert name == "procurement.contract.expiring.v1"
    assert (event.days_left, event.notice_from) == (180, date(2016, 10, 2))  # type: ignore[attr-defined]
    assert not domain.check_expiry(first.value, date(2016, 10, 3), 180).changed
    extended = domain.vary(first.value, Variation(extend=True, reason="keep going"), SPRINT,
                           datetime(2016, 11, 1, tzinfo=UTC)).value
    assert not domain.check_expiry(extended, date(2016, 11, 2), 180).changed
    assert domain.check_expiry(extended, date(2017, 10, 2), 180).changed


def test_an_ended_contract_is_not_expiring() -> None:
    assert not domain.check_expiry(contract(), date(2017, 4, 1), 180).changed


# -- approvals ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "approvers", "board", "spend_control"), [
    (10_000_000, 1, False, False),
    (10_000_001, 2, False, False),
    (100_000_000, 2, False, False),
    (100_000_001, 2, True, False),
    (500_000_000, 2, True, False),
    (500_000_001, 2, True, True),
])
def test_thresholds_decide_the_approvals(value: int, approvers: int, board: bool, spend_control: bool) -> None:
    required = THRESHOLDS.required(value)
    assert (required.approvers, required.board, required.spend_control) == (approvers, board, spend_control)


def test_thresholds_must_rise() -> None:
    with pytest.raises(ValueError, match="must rise"):
        Thresholds(single_approver=10, board=5, spend_control=20)


def test_no_self_approval() -> None:
    request = submitted(by="buyer")
    with pytest.raises(StateConflict, match="no self-approval"):
        purchases.approve(request, "buyer", ApprovalKind.APPROVER, NOW)


def test_no_approving_twice_and_two_approvers_above_the_limit() -> None:
    request = submitted(value_each=100_000_00, quantity=2)  # GBP 200,000
    once = purchases.approve(request, "a", ApprovalKind.APPROVER, NOW).value
    assert once.state is RequestState.SUBMITTED
    with pytest.raises(StateConflict, match="already approved"):
        purchases.approve(once, "a", ApprovalKind.APPROVER, NOW)
    twice = purchases.approve(once, "b", ApprovalKind.APPROVER, NOW)
    assert twice.value.state is RequestState.APPROVED
    assert twice.events[0][1].fully_approved  # type: ignore[attr-defined]


def test_spend_control_holds_the_order_until_recorded() -> None:
    request = submitted(value_each=1_000_00, quantity=6000)  # GBP 6m
    for who in ("a", "b"):
        request = purchases.approve(request, who, ApprovalKind.APPROVER, NOW).value
    request = purchases.approve(request, "board", ApprovalKind.BOARD, NOW).value
    assert request.state is RequestState.SUBMITTED
    with pytest.raises(StateConflict, match="held until the central spend-control approval"):
        purchases.place_order(request, NOW)
    request = purchases.approve(request, "cabinet-office", ApprovalKind.SPEND_CONTROL, NOW).value
    assert request.state is RequestState.APPROVED


def test_a_board_approval_is_refused_where_none_is_needed() -> None:
    with pytest.raises(StateConflict, match="needs no board approval"):
        purchases.approve(submitted(), "board", ApprovalKind.BOARD, NOW)


def test_rejection_needs_a_submitted_request_and_another_person() -> None:
    request = submitted()
    with pytest.raises(StateConflict):
        purchases.reject(request, "buyer", "no", NOW)
    rejected = purchases.reject(request, "approver", "no budget", NOW).value
    assert (rejected.state, rejected.rejection_reason) == (RequestState.REJECTED, "no budget")
    with pytest.raises(StateConflict, match="only a submitted request can be approved"):
        purchases.approve(rejected, "other", ApprovalKind.APPROVER, NOW)


def test_submission_needs_a_running_contract_under_the_same_framework() -> None:
    draft = purchases.draft("PR-1", RequestSpec(kind=DeviceKind.LAPTOP, quantity=1, framework_id="SPRINT-II"),
                         SPRINT, NOW)
    ended = contract(start=date(2012, 1, 1))
    with pytest.raises(RuleBroken, match="cannot be bought through") as refused:
        purchases.submit(draft, Submission(model="x", unit_price_pence=1), "b", ended, THRESHOLDS, NOW)
    assert refused.value.field == "contract_id"
    with pytest.raises(RuleBroken, match="unit price"):
        purchases.submit(draft, Submission(model="x"), "b", contract(), THRESHOLDS, NOW)


# -- the budget and deliveries --------------------------------------------------------------


def test_an_order_over_what_is_left_is_refused_with_the_figures() -> None:
    line = BudgetLine(year="2015-16", category=SpendCategory.END_USER_DEVICES, allocated_pence=2000_00)
    budget = budget_rules.new_budget("programme", "p", [line], NOW).value
    request = purchases.approve(submitted(value_each=899_00), "a", ApprovalKind.APPROVER, NOW).value
    budget = budget_rules.commit(budget, request).value
    assert not budget_rules.commit(budget, request).changed  # the same request commits once
    other = request.model_copy(update={"request_id": "PR-2"})
    with pytest.raises(StateConflict, match=r"allocated GBP 2,000\.00, committed GBP 1,798\.00, left GBP 202\.00"):
        budget_rules.commit(budget, other)


def test_the_default_budget_is_two_hundred_million_by_year_and_category() -> None:
    lines = budget_lines(200_000_000_00, ("2014-15", "2015-16", "2016-17", "2017-18"))
    assert sum(line.allocated_pence for line in lines) == 200_000_000_00
    assert len(lines) == 4 * len(SpendCategory)


def test_partial_deliveries_up_to_the_quantity_ordered() -> None:
    request = purchases.place_order(purchases.approve(submitted(quantity=2), "a", ApprovalKind.APPROVER, NOW).value,
                                 NOW).value
    location = Location(site="Holborn", borough="Camden", unit="Territorial")
    hardware = {"model": "L", "cpu_model": "i5", "cpu_arch": "x64", "cpu_cores": 2, "ram_mb": 8192, "disk_gb": 256,
                "tpm": "2.0", "firmware": "uefi"}

    def note(*tags: str) -> DeliveryNote:
        return DeliveryNote.model_validate({"location": location.model_dump(), "devices": [
            {"asset_tag": t, "serial_number": f"SN-{t}", "os": {"family": "windows", "version": "8.1"},
             "hardware": hardware} for t in tags]})

    first = purchases.receive(request, note("MPS-L-1"), NOW)
    assert first.value.state is RequestState.PARTIALLY_DELIVERED
    event = first.events[0][1]
    assert (event.delivered_quantity, event.value_pence, event.delivery_id) == (  # type: ignore[attr-defined]
        1, 899_00, "PO-PR-1-D1")
    with pytest.raises(RuleBroken, match="asset tag MPS-L-1 is delivered already"):
        purchases.receive(first.value, note("MPS-L-1"), NOW)
    camera = note("MPS-L-9").model_copy(update={"devices": [note("MPS-L-9").devices[0].model_copy(
        update={"os": OperatingSystem(family=OsFamily.CAMERA_FIRMWARE, version="1.0")})]})
    with pytest.raises(RuleBroken, match="a laptop cannot run camera_firmware") as wrong_os:
        purchases.receive(first.value, camera, NOW)
    assert wrong_os.value.field == "devices.0.os.family"
    with pytest.raises(RuleBroken, match="at most 1 more, not 2"):
        purchases.receive(first.value, note("MPS-L-2", "MPS-L-3"), NOW)
    done = purchases.receive(first.value, note("MPS-L-2"), NOW + timedelta(days=1)).value
    assert (done.state, done.delivered_quantity, done.delivered_value_pence) == (RequestState.DELIVERED, 2, 1798_00)


def test_a_need_joins_a_draft_once() -> None:
    draft = purchases.draft("PR-1", RequestSpec(kind=DeviceKind.LAPTOP, quantity=2, framework_id="SPRINT-II"),
                         SPRINT, NOW, [NeedLine(need_id="N1", site="A", quantity=2)])
    again, left = purchases.add_needs(draft, [NeedLine(need_id="N1", site="A", quantity=2)], NOW)
    assert not again.changed and left == []
    more, left = purchases.add_needs(draft, [NeedLine(need_id="N2", site="B", quantity=3)], NOW)
    assert (more.value.quantity, more.value.site, left) == (5, None, [])


def test_a_full_draft_leaves_the_rest_for_the_next() -> None:
    lines = [NeedLine(need_id=f"N{i}", site="A", quantity=1) for i in range(5)]
    draft = purchases.draft("PR-1", RequestSpec(kind=DeviceKind.LAPTOP, quantity=1, framework_id="SPRINT-II"),
                         SPRINT, NOW, lines[:1])
    change, left = purchases.add_needs(draft, lines, NOW, limit=3)
    assert [n.need_id for n in change.value.needs] == ["N0", "N1", "N2"] and change.value.quantity == 3
    assert [n.need_id for n in left] == ["N3", "N4"]
    full, still = purchases.add_needs(change.value, left, NOW, limit=3)
    assert not full.changed and still == left
    submitted = change.value.model_copy(update={"state": RequestState.SUBMITTED})
    assert purchases.add_needs(submitted, lines[:2], NOW, limit=3)[1] == []
    with pytest.raises(domain.StateConflict, match="only a draft takes needs"):
        purchases.add_needs(submitted, left, NOW, limit=3)


def test_a_budget_allocation_is_announced_whole_and_refuses_a_line_twice() -> None:
    line = BudgetLine(year="2015-16", category=SpendCategory.HOSTING, allocated_pence=5_00)
    created = budget_rules.new_budget("programme", "p", [line, line.model_copy(update={"year": "2016-17"})], NOW)
    [(name, event)] = created.events
    assert name == "procurement.budget.allocated.v1" and event.total_pence == 10_00  # type: ignore[attr-defined]
    with pytest.raises(RuleBroken, match="2015-16 hosting is allocated twice") as twice:
        budget_rules.reallocate(created.value, "p", [line, line], NOW)
    assert twice.value.field == "lines.1"
    assert not budget_rules.reallocate(created.value, "p", created.value.lines, NOW).changed
