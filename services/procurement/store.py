"""Procurement's repositories: one document per framework, per call-off contract, per purchase
request (with its approvals, order and deliveries), and one for the programme budget. Each is
read by ``_id``; each change is one version-guarded write carrying its events (the outbox)."""

from __future__ import annotations

from contracts.envelope import new_envelope
from contracts.procurement import (
    BUDGET_TOPIC,
    CONTRACTS_TOPIC,
    DELIVERIES_TOPIC,
    PURCHASES_TOPIC,
    DeliveryReceivedV1,
)
from services.procurement.budget import Budget
from services.procurement.domain import STORED_ONLY, CallOff, Framework
from services.procurement.purchases import PurchaseRequest
from services.runtime.changes import Change
from services.runtime.outbox import outbox_entries
from services.runtime.repository import A, Repository
from services.runtime.store import Document

SOURCE = "/estate/procurement"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
BUDGET_ID = "programme"


class _ProcurementRepository(Repository[A]):
    source = SOURCE

    def entries(self, change: Change[A], trace: dict[str, str] | None = None) -> list[Document]:
        """Only published event types go to the outbox (a draft or the budget changes
        silently); a delivery goes to the deliveries topic, keyed by its delivery id."""
        now, subject = self._clock.now(), self.key(change.value)
        found: list[Document] = []
        for name, data in change.events:
            if name == STORED_ONLY:
                continue
            topic, key = self.topic, subject
            if isinstance(data, DeliveryReceivedV1):
                topic, key = DELIVERIES_TOPIC, data.delivery_id
            envelope = new_envelope(type=name, source=self.source, subject=key, time=now, data=data)
            found += outbox_entries([envelope], topic, trace)
        return found


class FrameworkStore(_ProcurementRepository[Framework]):
    collection_name = "frameworks"
    topic = CONTRACTS_TOPIC  # frameworks announce nothing; their changes are stored only
    model = Framework
    noun = "framework"
    key_name = "id"

    def key(self, value: Framework) -> str:
        return value.framework_id


class ContractStore(_ProcurementRepository[CallOff]):
    collection_name = "call_off_contracts"
    topic = CONTRACTS_TOPIC
    model = CallOff
    noun = "call-off contract"
    key_name = "id"

    def key(self, value: CallOff) -> str:
        return value.contract_id


class RequestStore(_ProcurementRepository[PurchaseRequest]):
    collection_name = "purchase_requests"
    topic = PURCHASES_TOPIC
    model = PurchaseRequest
    noun = "purchase request"
    key_name = "id"
    incremental = True  # its needs and deliveries grow: appended, not rewritten
    indexes = ((("state", 1), ("_id", 1)),)

    def key(self, value: PurchaseRequest) -> str:
        return value.request_id


class BudgetStore(_ProcurementRepository[Budget]):
    collection_name = "budgets"
    topic = BUDGET_TOPIC  # its allocation; orders and deliveries announce what is spent against it
    model = Budget
    noun = "budget"
    key_name = "id"
    incremental = True  # a commitment per order and a spend per delivery: added, not rewritten

    def key(self, value: Budget) -> str:
        return value.budget_id
