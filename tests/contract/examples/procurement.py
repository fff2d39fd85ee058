"""Procurement events: a call-off contract awarded, varied and expiring; a purchase request
submitted, approved, ordered and delivered; another rejected."""

from __future__ import annotations

from datetime import date, timedelta

from contracts.common import DeviceKind
from contracts.envelope import Envelope, new_envelope
from contracts.procurement import (
    Approval,
    ApprovalKind,
    AwardRoute,
    ContractAwardedV1,
    ContractExpiringV1,
    ContractSnapshot,
    ContractVariedV1,
    DeliveredDevice,
    DeliveryReceivedV1,
    NeedLine,
    PurchaseApprovedV1,
    PurchaseOrderedV1,
    PurchaseRejectedV1,
    PurchaseRequestedV1,
    PurchaseRequestSnapshot,
    RequestState,
    RequiredApprovals,
    SpendCategory,
    SpendClass,
)
from tests.contract.examples.inventory import T0, _spec, _windows


def _contract() -> ContractSnapshot:
    return ContractSnapshot(
        contract_id="CO-SPRINT-001", title="Laptops and tablets for front-line officers",
        framework_id="RM1054", framework_name="Sprint ii", lot="Lot 1: IT hardware", supplier="Dell",
        category=SpendCategory.END_USER_DEVICES, classification=SpendClass.MODERN,
        route=AwardRoute.FURTHER_COMPETITION, value_pence=1_200_000_00, start=date(2015, 4, 1),
        end=date(2017, 3, 31), initial_term_months=24, extensions_used=0, extension_months_used=0,
        version=1)


def _contract_events() -> list[Envelope]:
    awarded = _contract()
    varied = awarded.model_copy(update={"value_pence": 1_300_000_00, "version": 2})
    events = [
        ContractAwardedV1(contract=awarded, awarded_at=T0),
        ContractVariedV1(contract_id=awarded.contract_id, version=2, previous_value_pence=awarded.value_pence,
                         value_pence=varied.value_pence, previous_end=awarded.end, end=varied.end,
                         extension_taken=False, reason="more tablets for Hammersmith and Fulham",
                         varied_at=T0, contract=varied),
        ContractExpiringV1(contract_id=awarded.contract_id, end=varied.end, notice_days=180,
                           notice_from=varied.end - timedelta(days=180), days_left=180, contract=varied),
    ]
    names = ["procurement.contract.awarded.v1", "procurement.contract.varied.v1",
             "procurement.contract.expiring.v1"]
    return [new_envelope(type=n, source="/procurement", subject=awarded.contract_id, time=T0, data=e)
            for n, e in zip(names, events, strict=True)]


def _request(**update: object) -> PurchaseRequestSnapshot:
    base = PurchaseRequestSnapshot(
        request_id="PR-000001", state=RequestState.SUBMITTED, kind=DeviceKind.LAPTOP,
        model="Dell Latitude E7450", quantity=2, unit_price_pence=899_00, value_pence=1798_00,
        framework_id="RM1054", framework_name="Sprint ii", lot="Lot 1: IT hardware",
        contract_id="CO-SPRINT-001", supplier="Dell", category=SpendCategory.END_USER_DEVICES,
        classification=SpendClass.MODERN, budget_year="2015-16", site="Holborn Police Station",
        borough="Camden", needs=[NeedLine(need_id="NEED-Camden-laptop-1", site="Holborn Police Station",
                                          borough="Camden", quantity=2)],
        requested_by="buyer@met", required=RequiredApprovals(approvers=1, board=False, spend_control=False),
        version=2, created_at=T0, updated_at=T0)
    return base.model_copy(update=update)


def _purchase_events() -> list[Envelope]:
    approval = Approval(by="approver@met", kind=ApprovalKind.APPROVER, at=T0)
    approved = _request(state=RequestState.APPROVED, approvals=[approval], version=3)
    ordered = approved.model_copy(update={"state": RequestState.ORDERED, "order_id": "PO-PR-000001",
                                          "ordered_at": T0, "version": 4})
    rejected = _request(request_id="PR-000002", state=RequestState.REJECTED, rejected_by="approver@met",
                        rejection_reason="no budget left this year for desktops", version=3)
    pr1, pr2 = "PR-000001", "PR-000002"
    events = [
        (pr1, "procurement.purchase.requested.v1", PurchaseRequestedV1(request_id=pr1, version=2, request=_request())),
        (pr1, "procurement.purchase.approved.v1",
         PurchaseApprovedV1(request_id=pr1, version=3, approval=approval, fully_approved=True, request=approved)),
        (pr1, "procurement.purchase.ordered.v1",
         PurchaseOrderedV1(request_id=pr1, order_id="PO-PR-000001", version=4, value_pence=1798_00,
                           budget_year="2015-16", ordered_at=T0, request=ordered)),
        (pr2, "procurement.purchase.rejected.v1",
         PurchaseRejectedV1(request_id=pr2, version=3, rejected_by="approver@met",
                            reason="no budget left this year for desktops", request=rejected)),
    ]
    return [new_envelope(type=n, source="/procurement", subject=s, time=T0, data=e) for s, n, e in events]


def examples() -> list[Envelope]:
    delivery = DeliveryReceivedV1(
        delivery_id="DEL-1", order_id="PO-7", framework="RM6068", supplier="Dell", received_at=T0,
        location=_spec().location,
        devices=[DeliveredDevice(asset_tag="MPS-L-000001", kind=DeviceKind.LAPTOP,
                                 os=_windows("10"),
                                 hardware=_spec().hardware)])
    full = DeliveryReceivedV1(
        delivery_id="PO-PR-000001-D1", order_id="PO-PR-000001", framework="RM1054", supplier="Dell",
        received_at=T0, location=_spec().location,
        devices=[DeliveredDevice(asset_tag="MPS-L-000002", kind=DeviceKind.LAPTOP, os=_windows("8.1"),
                                 hardware=_spec().hardware, serial_number="SN-5CG1234")],
        request_id="PR-000001", contract_id="CO-SPRINT-001", framework_name="Sprint ii",
        lot="Lot 1: IT hardware", category=SpendCategory.END_USER_DEVICES, classification=SpendClass.MODERN,
        budget_year="2015-16", unit_price_pence=899_00, value_pence=899_00, ordered_quantity=2,
        delivered_quantity=1)
    return [*_contract_events(), *_purchase_events(),
            new_envelope(type="procurement.delivery.received.v1", source="/procurement",
                         subject="DEL-1", time=T0, data=delivery),
            new_envelope(type="procurement.delivery.received.v1", source="/procurement",
                         subject=full.delivery_id, time=T0, data=full)]
