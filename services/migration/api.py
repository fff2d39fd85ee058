"""Migration routes: parse, authorise, call a handler, shape the answer."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from contracts.common import Sanitisation
from contracts.migration import SupportWarning, WaveProgress
from services.migration.domain import DeviceRecord, Policy, PolicySpec, support_warning
from services.migration.handlers import MigrationHandlers
from services.migration.store import ASSET_TAG_PATTERN
from services.migration.waves import Wave, WaveSpec
from services.runtime.auth import Admin, Reader, Writer
from services.runtime.conditional import IfMatch, etag, expected_version
from services.runtime.http import handlers_of
from services.runtime.openapi import PROTECTED, problem_responses
from services.runtime.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/migration", tags=["migration"])
Handlers = Annotated[MigrationHandlers, Depends(handlers_of("migration"))]
CHANGE = (*PROTECTED, 404, 409, 412, 413, 422)
MAX_PAGE = 500


class PolicyAnswer(BaseModel):
    policy: Policy
    warning: SupportWarning | None = Field(description="Set when the target's support ends sooner than another's")
    reassessed: int | None = Field(default=None, description="Devices reassessed by this change")


class WaveAnswer(BaseModel):
    wave: Wave
    progress: WaveProgress
    expected_end: date


class WavesAnswer(BaseModel):
    items: list[WaveAnswer]


class DevicesPage(BaseModel):
    items: list[DeviceRecord]
    next_cursor: str | None


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=200)


class PilotAnswer(BaseModel):
    devices: list[str]
    items_to_cover: int
    uncovered: list[str]
    method: str = "greedy set cover: within ln(n)+1 of the fewest devices, n = items to cover"


def _wave(response: Response, wave: Wave) -> WaveAnswer:
    response.headers["ETag"] = etag(wave.version)
    return WaveAnswer(wave=wave, progress=wave.progress(), expected_end=wave.expected_end())


@router.get("/policy", response_model=PolicyAnswer, summary="The migration policy, with its support warning",
            responses=problem_responses(*PROTECTED, 404))
async def get_policy(handlers: Handlers, response: Response, _: Reader) -> PolicyAnswer:
    policy = await handlers.policy()
    response.headers["ETag"] = etag(policy.version)
    return PolicyAnswer(policy=policy, warning=support_warning(policy))


@router.put("/policy", response_model=PolicyAnswer, summary="Set the policy; reassesses the devices it concerns",
            responses=problem_responses(*CHANGE))
async def put_policy(spec: PolicySpec, handlers: Handlers, response: Response, _: Admin,
                     if_match: IfMatch = None) -> PolicyAnswer:
    view = await handlers.set_policy(spec, expected_version(if_match))
    response.headers["ETag"] = etag(view.policy.version)
    return PolicyAnswer(policy=view.policy, warning=support_warning(view.policy), reassessed=view.reassessed)


@router.get("/devices", response_model=DevicesPage, summary="Devices' readiness and sagas, a page at a time",
            responses=problem_responses(*PROTECTED, 422))
async def list_devices(handlers: Handlers, _: Reader, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
                       cursor: str | None = None) -> DevicesPage:
    after = decode_cursor(cursor, ASSET_TAG_PATTERN) if cursor else None
    page = await handlers.device_page(after=after, limit=limit)
    return DevicesPage(items=page.items, next_cursor=encode_cursor(page.last) if page.last else None)


@router.get("/devices/{asset_tag}", response_model=DeviceRecord, summary="One device's readiness and saga",
            responses=problem_responses(*PROTECTED, 404))
async def get_device(asset_tag: str, handlers: Handlers, response: Response, _: Reader) -> DeviceRecord:
    record = await handlers.device(asset_tag)
    response.headers["ETag"] = etag(record.version)
    return record


@router.post("/devices/{asset_tag}/disposal", response_model=DeviceRecord,
             summary="Record a replaced device's sanitisation; inventory then disposes of it",
             responses=problem_responses(*CHANGE))
async def request_disposal(asset_tag: str, record: Sanitisation, handlers: Handlers, response: Response,
                           _: Admin, if_match: IfMatch = None) -> DeviceRecord:
    after = await handlers.request_disposal(asset_tag, record, expected_version(if_match))
    response.headers["ETag"] = etag(after.version)
    return after


@router.post("/waves", status_code=status.HTTP_201_CREATED, response_model=WaveAnswer,
             summary="Plan a wave over sites or boroughs, from a start date at a daily capacity",
             responses=problem_responses(*PROTECTED, 404, 409, 413, 422))
async def plan_wave(spec: WaveSpec, handlers: Handlers, response: Response, _: Writer) -> WaveAnswer:
    wave = await handlers.plan_wave(spec)
    response.headers["Location"] = f"/migration/waves/{wave.wave_id}"
    return _wave(response, wave)


@router.get("/waves", response_model=WavesAnswer, summary="Every wave with its progress",
            responses=problem_responses(*PROTECTED))
async def list_waves(handlers: Handlers, _: Reader) -> WavesAnswer:
    waves = await handlers.all_waves()
    return WavesAnswer(items=[WaveAnswer(wave=w, progress=w.progress(), expected_end=w.expected_end())
                              for w in waves])


@router.get("/waves/{wave_id}", response_model=WaveAnswer, summary="One wave with its progress",
            responses=problem_responses(*PROTECTED, 404))
async def get_wave(wave_id: str, handlers: Handlers, response: Response, _: Reader) -> WaveAnswer:
    return _wave(response, await handlers.wave(wave_id))


@router.post("/waves/{wave_id}/pause", response_model=WaveAnswer, summary="Stop starting devices",
             responses=problem_responses(*CHANGE))
async def pause_wave(wave_id: str, body: Reason, handlers: Handlers, response: Response, _: Writer,
                     if_match: IfMatch = None) -> WaveAnswer:
    return _wave(response, await handlers.pause(wave_id, body.reason, expected_version(if_match)))


@router.post("/waves/{wave_id}/resume", response_model=WaveAnswer,
             summary="Start devices again, rescheduled from today", responses=problem_responses(*CHANGE))
async def resume_wave(wave_id: str, handlers: Handlers, response: Response, _: Writer,
                      if_match: IfMatch = None) -> WaveAnswer:
    return _wave(response, await handlers.resume(wave_id, expected_version(if_match)))


@router.post("/waves/{wave_id}/cancel", response_model=WaveAnswer,
             summary="Cancel; devices not started leave the wave", responses=problem_responses(*CHANGE))
async def cancel_wave(wave_id: str, body: Reason, handlers: Handlers, response: Response, _: Writer,
                      if_match: IfMatch = None) -> WaveAnswer:
    return _wave(response, await handlers.cancel(wave_id, body.reason, expected_version(if_match)))


@router.get("/pilot", response_model=PilotAnswer,
            summary="A recommended pilot: few devices covering every critical application and hardware model",
            responses=problem_responses(*PROTECTED, 404, 422))
async def pilot(handlers: Handlers, _: Reader,
                site: Annotated[list[str], Query(min_length=1, description="Sites to draw the pilot from")]
                ) -> PilotAnswer:
    chosen, missing, total = await handlers.recommend_pilot(site)
    return PilotAnswer(devices=chosen, items_to_cover=total, uncovered=sorted(missing))
