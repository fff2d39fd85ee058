"""Procurement routes: parse, authorise, call a handler, shape the answer.

Frameworks and the budget are changed by admins; contracts, purchase requests, orders and
deliveries by writers; approvals by writers, except the board's and central spend control's,
which need the admin role. Approver identity is the token's subject.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from contracts.common import ShortText
from contracts.procurement import ApprovalKind, RequestState, SpendClass
from services.procurement.budget import BudgetLine
from services.procurement.domain import AwardSpec, CallOff, Framework, FrameworkSpec, Variation
from services.procurement.handlers import BudgetFigure, ProcurementHandlers, Supplier, figures
from services.procurement.purchases import DeliveryNote, PurchaseRequest, RequestSpec, Submission
from services.procurement.store import ID_PATTERN
from services.runtime.auth import Admin, Reader, Role, Writer
from services.runtime.conditional import IfMatch, etag, expected_version
from services.runtime.errors import Forbidden
from services.runtime.http import handlers_of
from services.runtime.openapi import PROTECTED, problem_responses
from services.runtime.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/procurement", tags=["procurement"])

MAX_PAGE = 500
CHANGE = (*PROTECTED, 404, 409, 412, 422)
"""What a change to one framework, contract or request can answer with (409: its state or
the budget does not allow it; 422: the input breaks a rule, named)."""

Handlers = Annotated[ProcurementHandlers, Depends(handlers_of("procurement"))]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


def _after(cursor: str | None) -> str | None:
    return decode_cursor(cursor, ID_PATTERN) if cursor else None


def _next(last: str | None) -> str | None:
    return encode_cursor(last) if last else None


M = TypeVar("M", Framework, CallOff, PurchaseRequest)


def _tagged(response: Response, value: M) -> M:
    response.headers["ETag"] = etag(value.version)
    return value


# -- frameworks -------------------------------------------------------------------------------


class FrameworksPage(BaseModel):
    items: list[Framework]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last")


@router.get("/frameworks", response_model=FrameworksPage, summary="List frameworks and their rules",
            responses=problem_responses(*PROTECTED, 422))
async def list_frameworks(handlers: Handlers, _: Reader, limit: Limit = 100, cursor: Cursor = None) -> FrameworksPage:
    page = await handlers.page_frameworks(after=_after(cursor), limit=limit)
    return FrameworksPage(items=page.items, next_cursor=_next(page.last))


@router.post("/frameworks", status_code=status.HTTP_201_CREATED, response_model=Framework,
             summary="Record a framework", responses=problem_responses(*PROTECTED, 409, 413, 422))
async def add_framework(spec: FrameworkSpec, handlers: Handlers, response: Response, _: Admin) -> Framework:
    framework = await handlers.add_framework(spec)
    response.headers["Location"] = f"/procurement/frameworks/{framework.framework_id}"
    return _tagged(response, framework)


@router.get("/frameworks/{framework_id}", response_model=Framework, summary="One framework, with its ETag",
            responses=problem_responses(*PROTECTED, 404))
async def get_framework(framework_id: str, handlers: Handlers, response: Response, _: Reader) -> Framework:
    return _tagged(response, await handlers.framework(framework_id))


@router.put("/frameworks/{framework_id}", response_model=Framework, summary="Change a framework's rules",
            responses=problem_responses(*CHANGE, 413))
async def replace_framework(framework_id: str, spec: FrameworkSpec, handlers: Handlers, response: Response,
                            _: Admin, if_match: IfMatch = None) -> Framework:
    return _tagged(response, await handlers.replace_framework(framework_id, spec, expected_version(if_match)))


# -- call-off contracts -----------------------------------------------------------------------


class ContractsPage(BaseModel):
    items: list[CallOff]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last")


class Expiring(BaseModel):
    within_days: int
    items: list[CallOff] = Field(description="Soonest end first")


@router.get("/contracts", response_model=ContractsPage, summary="List call-off contracts",
            responses=problem_responses(*PROTECTED, 422))
async def list_contracts(handlers: Handlers, _: Reader, limit: Limit = 100, cursor: Cursor = None) -> ContractsPage:
    page = await handlers.page_contracts(after=_after(cursor), limit=limit)
    return ContractsPage(items=page.items, next_cursor=_next(page.last))


@router.post("/contracts", status_code=status.HTTP_201_CREATED, response_model=CallOff,
             summary="Record an awarded call-off contract",
             description="Refused (422, the rule named) when the framework is unknown, the lot may not "
                         "buy the category or use the route, or the term is over the framework's maximum.",
             responses=problem_responses(*PROTECTED, 409, 413, 422))
async def award(spec: AwardSpec, handlers: Handlers, response: Response, _: Writer) -> CallOff:
    contract = await handlers.award(spec)
    response.headers["Location"] = f"/procurement/contracts/{contract.contract_id}"
    return _tagged(response, contract)


@router.get("/contracts/expiring", response_model=Expiring,
            summary="Contracts in their notice window (ending within the days given)",
            responses=problem_responses(*PROTECTED, 422))
async def expiring(handlers: Handlers, _: Reader, within_days: Annotated[int | None, Query(
        ge=1, le=3650, description="The notice period (configured, 180 days by default) unless given")] = None,
                   ) -> Expiring:
    days = within_days or handlers.policy.notice_days
    return Expiring(within_days=days, items=await handlers.expiring(days))


@router.get("/suppliers", response_model=list[Supplier],
            summary="Suppliers the programme holds call-offs with: their contracts and value, legacy and modern",
            responses=problem_responses(*PROTECTED))
async def suppliers(handlers: Handlers, _: Reader) -> list[Supplier]:
    return await handlers.suppliers()


@router.get("/contracts/{contract_id}", response_model=CallOff, summary="One call-off contract, with its ETag",
            responses=problem_responses(*PROTECTED, 404))
async def get_contract(contract_id: str, handlers: Handlers, response: Response, _: Reader) -> CallOff:
    return _tagged(response, await handlers.contract(contract_id))


@router.post("/contracts/{contract_id}/variations", response_model=CallOff,
             summary="Vary a contract's value or take an extension",
             description="A rise of more than 10% over the awarded value is refused as needing "
                         "re-procurement; an extension beyond the framework's options is refused.",
             responses=problem_responses(*CHANGE, 413))
async def vary(contract_id: str, variation: Variation, handlers: Handlers, response: Response, _: Writer,
               if_match: IfMatch = None) -> CallOff:
    return _tagged(response, await handlers.vary(contract_id, variation, expected_version(if_match)))


# -- purchase requests ------------------------------------------------------------------------


class RequestsPage(BaseModel):
    items: list[PurchaseRequest]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last")


class ApprovalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: ApprovalKind = Field(default=ApprovalKind.APPROVER,
                               description="board and spend_control approvals need the admin role")


class Rejection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: ShortText


@router.get("/purchase-requests", response_model=RequestsPage, summary="List purchase requests",
            responses=problem_responses(*PROTECTED, 422))
async def list_requests(handlers: Handlers, _: Reader, state: RequestState | None = None,
                        limit: Limit = 100, cursor: Cursor = None) -> RequestsPage:
    page = await handlers.page_requests(state, after=_after(cursor), limit=limit)
    return RequestsPage(items=page.items, next_cursor=_next(page.last))


@router.post("/purchase-requests", status_code=status.HTTP_201_CREATED, response_model=PurchaseRequest,
             summary="Raise a draft purchase request", responses=problem_responses(*PROTECTED, 413, 422))
async def raise_request(spec: RequestSpec, handlers: Handlers, response: Response, _: Writer) -> PurchaseRequest:
    request = await handlers.raise_request(spec)
    response.headers["Location"] = f"/procurement/purchase-requests/{request.request_id}"
    return _tagged(response, request)


@router.get("/purchase-requests/{request_id}", response_model=PurchaseRequest,
            summary="One purchase request, with its ETag", responses=problem_responses(*PROTECTED, 404))
async def get_request(request_id: str, handlers: Handlers, response: Response, _: Reader) -> PurchaseRequest:
    return _tagged(response, await handlers.request(request_id))


@router.post("/purchase-requests/{request_id}/submit", response_model=PurchaseRequest,
             summary="Submit a draft for approval (the caller is the requester)",
             responses=problem_responses(*CHANGE, 413))
async def submit(request_id: str, details: Submission, handlers: Handlers, response: Response,
                 principal: Writer, if_match: IfMatch = None) -> PurchaseRequest:
    return _tagged(response, await handlers.submit(request_id, details, principal.subject,
                                                   expected_version(if_match)))


@router.post("/purchase-requests/{request_id}/approve", response_model=PurchaseRequest,
             summary="Record the caller's approval",
             description="No self-approval, one approval per person; the thresholds decide how many "
                         "approvers, and whether the board and central spend control must approve too.",
             responses=problem_responses(*CHANGE, 413))
async def approve(request_id: str, body: ApprovalBody, handlers: Handlers, response: Response,
                  principal: Writer, if_match: IfMatch = None) -> PurchaseRequest:
    if body.kind is not ApprovalKind.APPROVER and not principal.has(Role.ADMIN):
        raise Forbidden(f"a {body.kind.value} approval needs the admin role")
    return _tagged(response, await handlers.approve(request_id, principal.subject, body.kind,
                                                    expected_version(if_match)))


@router.post("/purchase-requests/{request_id}/reject", response_model=PurchaseRequest,
             summary="Reject a submitted request, with the reason", responses=problem_responses(*CHANGE, 413))
async def reject(request_id: str, body: Rejection, handlers: Handlers, response: Response,
                 principal: Writer, if_match: IfMatch = None) -> PurchaseRequest:
    return _tagged(response, await handlers.reject(request_id, principal.subject, body.reason,
                                                   expected_version(if_match)))


@router.post("/purchase-requests/{request_id}/order", response_model=PurchaseRequest,
             summary="Order an approved request (its value is committed against the budget)",
             description="Refused (409, with the figures) when the value is more than what is left of "
                         "the budget for its year and category.",
             responses=problem_responses(*CHANGE))
async def order(request_id: str, handlers: Handlers, response: Response, _: Writer,
                if_match: IfMatch = None) -> PurchaseRequest:
    return _tagged(response, await handlers.order(request_id, expected_version(if_match)))


@router.post("/purchase-requests/{request_id}/deliveries", response_model=PurchaseRequest,
             summary="Record a delivery (partial deliveries allowed); the devices join the inventory",
             responses=problem_responses(*CHANGE, 413))
async def deliver(request_id: str, note: DeliveryNote, handlers: Handlers, response: Response, _: Writer,
                  if_match: IfMatch = None) -> PurchaseRequest:
    return _tagged(response, await handlers.deliver(request_id, note, expected_version(if_match)))


# -- the budget -------------------------------------------------------------------------------


class BudgetView(BaseModel):
    name: str
    allocated_pence: int
    committed_pence: int
    delivered_pence: int
    left_pence: int
    committed_by_classification: dict[SpendClass, int]
    committed_by_framework: dict[str, int]
    figures: list[BudgetFigure] = Field(description="By year and category")
    version: int


class BudgetAllocation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ShortText
    lines: list[BudgetLine] = Field(min_length=1, max_length=200)


@router.get("/budget", response_model=BudgetView,
            summary="The programme budget: allocated, committed and delivered, by year and category",
            responses=problem_responses(*PROTECTED, 404))
async def budget(handlers: Handlers, response: Response, _: Reader) -> BudgetView:
    found = await handlers.budget()
    response.headers["ETag"] = etag(found.version)
    rows = figures(found)
    by_class = dict.fromkeys(SpendClass, 0)
    by_framework: dict[str, int] = {}
    for commitment in found.commitments.values():
        by_class[commitment.classification] += commitment.value_pence
        by_framework[commitment.framework_id] = by_framework.get(commitment.framework_id, 0) + commitment.value_pence
    return BudgetView(name=found.name, allocated_pence=sum(r.allocated_pence for r in rows),
                      committed_pence=sum(r.committed_pence for r in rows),
                      delivered_pence=sum(r.delivered_pence for r in rows),
                      left_pence=sum(r.left_pence for r in rows), committed_by_classification=by_class,
                      committed_by_framework=by_framework, figures=rows, version=found.version)


@router.put("/budget", response_model=BudgetView, summary="Set the budget's allocation by year and category",
            responses=problem_responses(*PROTECTED, 404, 409, 413, 422))
async def set_budget(body: BudgetAllocation, handlers: Handlers, response: Response, admin: Admin) -> BudgetView:
    await handlers.set_budget(body.name, body.lines)
    return await budget(handlers, response, admin)
