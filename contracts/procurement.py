"""Procurement events: call-off contracts, purchase requests and deliveries.

Three streams, each keyed by its aggregate's id so one aggregate's events stay in order:

- ``procurement.contracts`` (key = contract id): a call-off contract was awarded, varied, or
  entered its notice window before expiry;
- ``procurement.purchases`` (key = request id): a purchase request was raised, approved,
  rejected or ordered;
- ``procurement.deliveries`` (key = delivery id): devices arrived; inventory registers each
  delivered device once.

Money is whole pence (``*_pence``, integers), never floats. Every event carries the framework,
lot, category, legacy/modern classification and supplier, so a read model (spend against
budget by framework, legacy vs modern share, contracts nearing expiry) needs nothing else.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field, StringConstraints

from contracts.common import (
    ApplicationName,
    AssetTag,
    Contract,
    DeviceKind,
    Hardware,
    Location,
    OperatingSystem,
    ShortText,
)

CONTRACTS_TOPIC = "procurement.contracts"
PURCHASES_TOPIC = "procurement.purchases"
DELIVERIES_TOPIC = "procurement.deliveries"

Pence = Annotated[int, Field(ge=0, le=10**13, description="Whole pence (GBP 1.00 = 100)")]
BudgetYear = Annotated[str, StringConstraints(pattern=r"^20[0-9]{2}-[0-9]{2}$"),
                       Field(description="UK financial year, April to March, e.g. 2015-16")]


class SpendCategory(StrEnum):
    """What the money buys; the programme budget is split by these."""

    END_USER_DEVICES = "end_user_devices"
    HOSTING = "hosting"
    SOFTWARE = "software"
    SUPPORT = "support"
    MIGRATION_SERVICES = "migration_services"


class SpendClass(StrEnum):
    """Whether spend keeps old systems running (legacy) or buys new capability (modern)."""

    LEGACY = "legacy"
    MODERN = "modern"


class AwardRoute(StrEnum):
    DIRECT_AWARD = "direct_award"
    FURTHER_COMPETITION = "further_competition"


class ContractSnapshot(Contract):
    """A call-off contract as it stands after the change an event announces."""

    contract_id: ShortText
    title: ShortText
    framework_id: ShortText
    framework_name: ShortText
    lot: ShortText
    supplier: ShortText
    category: SpendCategory
    classification: SpendClass
    route: AwardRoute
    value_pence: Pence
    start: date
    end: date
    initial_term_months: int = Field(ge=1, le=120)
    extensions_used: int = Field(ge=0, le=10, description="Extension options taken so far")
    extension_months_used: int = Field(ge=0, le=120)
    version: int = Field(ge=1)


class ContractAwardedV1(Contract):
    contract: ContractSnapshot
    awarded_at: AwareDatetime


class ContractVariedV1(Contract):
    contract_id: ShortText
    version: int = Field(ge=1)
    previous_value_pence: Pence
    value_pence: Pence
    previous_end: date
    end: date
    extension_taken: bool = Field(description="True when the variation took an extension option")
    reason: ShortText
    varied_at: AwareDatetime
    contract: ContractSnapshot


class ContractExpiringV1(Contract):
    """The contract entered its notice window: raised once per contract and window."""

    contract_id: ShortText
    end: date
    notice_days: int = Field(ge=1, le=3650)
    notice_from: date = Field(description="First day of the notice window (end - notice_days)")
    days_left: int = Field(ge=0)
    contract: ContractSnapshot


class RequestState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    ORDERED = "ordered"
    PARTIALLY_DELIVERED = "partially_delivered"
    DELIVERED = "delivered"


class ApprovalKind(StrEnum):
    APPROVER = "approver"
    BOARD = "board"
    SPEND_CONTROL = "spend_control"
    """The central (government) spend-control approval, needed above its threshold."""


class Approval(Contract):
    by: ShortText = Field(description="The approver's identity (the token's subject)")
    kind: ApprovalKind
    at: AwareDatetime


class NeedLine(Contract):
    """A migration replacement need the request answers."""

    need_id: ShortText
    site: ShortText
    borough: str | None = None
    quantity: int = Field(ge=1, le=5000)


class RequiredApprovals(Contract):
    approvers: int = Field(ge=1, le=5, description="Distinct ordinary approvers needed")
    board: bool
    spend_control: bool


class PurchaseRequestSnapshot(Contract):
    """A purchase request as it stands after the change an event announces."""

    request_id: ShortText
    state: RequestState
    kind: DeviceKind
    model: ShortText | None = None
    quantity: int = Field(ge=1, le=100_000)
    unit_price_pence: Pence | None = None
    value_pence: Pence | None = None
    framework_id: ShortText
    framework_name: ShortText
    lot: ShortText | None = None
    contract_id: ShortText | None = None
    supplier: ShortText | None = None
    category: SpendCategory
    classification: SpendClass
    budget_year: BudgetYear | None = None
    site: ShortText | None = None
    borough: str | None = None
    needs: list[NeedLine] = Field(default_factory=list, max_length=5000)
    requested_by: ShortText | None = None
    required: RequiredApprovals | None = None
    approvals: list[Approval] = Field(default_factory=list)
    rejected_by: ShortText | None = None
    rejection_reason: ShortText | None = None
    order_id: ShortText | None = None
    ordered_at: AwareDatetime | None = None
    delivered_quantity: int = Field(default=0, ge=0)
    delivered_value_pence: Pence = 0
    version: int = Field(ge=1)
    created_at: AwareDatetime
    updated_at: AwareDatetime


class PurchaseRequestedV1(Contract):
    """A request was submitted for approval (drafts are not announced)."""

    request_id: ShortText
    version: int = Field(ge=1)
    request: PurchaseRequestSnapshot


class PurchaseApprovedV1(Contract):
    """An approval was recorded; ``fully_approved`` once every required approval is in."""

    request_id: ShortText
    version: int = Field(ge=1)
    approval: Approval
    fully_approved: bool
    request: PurchaseRequestSnapshot


class PurchaseRejectedV1(Contract):
    request_id: ShortText
    version: int = Field(ge=1)
    rejected_by: ShortText
    reason: ShortText
    request: PurchaseRequestSnapshot


class PurchaseOrderedV1(Contract):
    """An approved request was ordered: its value is now committed against the budget."""

    request_id: ShortText
    order_id: ShortText
    version: int = Field(ge=1)
    value_pence: Pence
    budget_year: BudgetYear
    ordered_at: AwareDatetime
    request: PurchaseRequestSnapshot


class DeliveredDevice(Contract):
    asset_tag: AssetTag
    kind: DeviceKind
    os: OperatingSystem
    hardware: Hardware
    applications: list[ApplicationName] = Field(default_factory=list, max_length=200)
    serial_number: ShortText | None = None


class DeliveryReceivedV1(Contract):
    delivery_id: ShortText
    order_id: ShortText
    framework: ShortText
    supplier: ShortText
    received_at: AwareDatetime
    location: Location
    devices: list[DeliveredDevice] = Field(min_length=1, max_length=5000)
    request_id: ShortText | None = None
    contract_id: ShortText | None = None
    framework_name: ShortText | None = None
    lot: ShortText | None = None
    category: SpendCategory | None = None
    classification: SpendClass | None = None
    budget_year: BudgetYear | None = None
    unit_price_pence: Pence | None = None
    value_pence: Pence | None = Field(default=None, description="Value of the devices in this delivery")
    ordered_quantity: int | None = Field(default=None, ge=1)
    delivered_quantity: int | None = Field(default=None, ge=1, description="Delivered so far, this one included")
