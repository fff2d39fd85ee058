"""Inventory routes: parse, authorise, call a handler, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from contracts.common import DeviceKind, OsFamily, Sanitisation
from contracts.inventory import LifecycleState
from services.inventory.domain import Device, DevicePatch, DeviceSpec
from services.inventory.handlers import InventoryHandlers
from services.inventory.imports import ImportFormatError, ImportReport, UnsupportedFormat, read
from services.inventory.store import ASSET_TAG_PATTERN, DeviceQuery
from services.runtime.auth import Admin, Reader, Writer
from services.runtime.conditional import IfMatch, etag, expected_version
from services.runtime.errors import InvalidInput, UnsupportedMediaType
from services.runtime.http import handlers_of
from services.runtime.openapi import PROTECTED, problem_responses, raw_body
from services.runtime.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/devices", tags=["inventory"])

MAX_PAGE = 500
CSV, JSON_LINES = "text/csv", "application/x-ndjson"
CHANGE = (*PROTECTED, 404, 409, 412, 413, 422)
"""What a change to one device can answer with (409: the lifecycle does not allow it)."""


Handlers = Annotated[InventoryHandlers, Depends(handlers_of("inventory"))]


def _answer(response: Response, device: Device) -> Device:
    response.headers["ETag"] = etag(device.version)
    return device


class DevicesPage(BaseModel):
    items: list[Device]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last")


class StateMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: LifecycleState


class Retirement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=200)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Device,
             summary="Register a device", responses=problem_responses(*PROTECTED, 409, 413, 422))
async def register(spec: DeviceSpec, handlers: Handlers, response: Response, _: Writer) -> Device:
    device = await handlers.register(spec)
    response.headers["Location"] = f"/devices/{device.asset_tag}"
    return _answer(response, device)


@router.get("", response_model=DevicesPage, summary="List devices, filtered, a page at a time",
            responses=problem_responses(*PROTECTED, 422))
async def list_devices(
    handlers: Handlers, _: Reader,
    kind: DeviceKind | None = None, os_family: OsFamily | None = None, os_version: str | None = None,
    site: str | None = None, borough: str | None = None, unit: str | None = None,
    state: LifecycleState | None = None,
    application: Annotated[str | None, Query(description="Devices with this application installed")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> DevicesPage:
    query = DeviceQuery(kind=kind, os_family=os_family, os_version=os_version, site=site,
                        borough=borough, unit=unit, state=state, application=application)
    after = decode_cursor(cursor, ASSET_TAG_PATTERN) if cursor else None
    page = await handlers.page(query, after=after, limit=limit)
    return DevicesPage(items=page.items, next_cursor=encode_cursor(page.last) if page.last else None)


@router.post("/import", response_model=ImportReport, summary="Bulk import CSV or JSON Lines",
             description="Body: `text/csv` with a header row, or `application/x-ndjson` (one device "
                         "per line, as POST /devices takes). Keyed by asset tag: a new tag registers a "
                         "device, a known one updates its facts, an identical one changes nothing, so "
                         "importing the same file twice is safe. Good rows are stored; each bad row is "
                         "reported with its line, field and reason.",
             responses=problem_responses(*PROTECTED, 413, 415, 422),
             openapi_extra=raw_body("The devices, CSV or JSON Lines (UTF-8)",
                                    {CSV: {"type": "string"}, JSON_LINES: {"type": "string"}}))
async def import_devices(request: Request, handlers: Handlers, _: Writer) -> ImportReport:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"the body is not UTF-8 text (byte {error.start})") from None
    try:
        rows = read(text, media_type)
        report = await handlers.import_rows(rows)
    except UnsupportedFormat as error:
        raise UnsupportedMediaType(str(error)) from None
    except ImportFormatError as error:
        raise InvalidInput(str(error)) from None
    return report


@router.get("/{asset_tag}", response_model=Device, summary="One device, with its ETag",
            responses=problem_responses(*PROTECTED, 404))
async def get_device(asset_tag: str, handlers: Handlers, response: Response, _: Reader) -> Device:
    return _answer(response, await handlers.get(asset_tag))


@router.patch("/{asset_tag}", response_model=Device, summary="Change a device's facts",
              responses=problem_responses(*CHANGE))
async def update_device(asset_tag: str, patch: DevicePatch, handlers: Handlers, response: Response,
                        _: Writer, if_match: IfMatch = None) -> Device:
    device = await handlers.update(asset_tag, patch, expected_version(if_match))
    return _answer(response, device)


@router.post("/{asset_tag}/state", response_model=Device, summary="Move a device along its lifecycle",
             responses=problem_responses(*CHANGE))
async def move_device(asset_tag: str, body: StateMove, handlers: Handlers, response: Response,
                      _: Writer, if_match: IfMatch = None) -> Device:
    device = await handlers.move(asset_tag, body.state, expected_version(if_match))
    return _answer(response, device)


@router.post("/{asset_tag}/retire", response_model=Device, summary="Take a device out of service",
             responses=problem_responses(*CHANGE))
async def retire_device(asset_tag: str, body: Retirement, handlers: Handlers, response: Response,
                        _: Writer, if_match: IfMatch = None) -> Device:
    device = await handlers.retire(asset_tag, body.reason, expected_version(if_match))
    return _answer(response, device)


@router.post("/{asset_tag}/dispose", response_model=Device,
             summary="Dispose of a retired device (needs its data-sanitisation record)",
             responses=problem_responses(*CHANGE))
async def dispose_device(asset_tag: str, record: Sanitisation, handlers: Handlers, response: Response,
                         _: Admin, if_match: IfMatch = None) -> Device:
    device = await handlers.dispose(asset_tag, record, expected_version(if_match))
    return _answer(response, device)

