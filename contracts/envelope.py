"""The event envelope: CloudEvents 1.0 attributes, structured JSON mode.

Every message on every topic is one ``Envelope`` serialised as JSON. The Kafka message
key is the envelope's ``subject`` (the aggregate id), so one aggregate's events stay in
order. Trace context travels in the Kafka headers (W3C ``traceparent``), not here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, description="Unique per event; consumers deduplicate on it")
    type: str = Field(
        pattern=r"^[a-z]+(\.[a-z_]+)+\.v[0-9]+$",
        description="e.g. inventory.device.registered.v1",
    )
    source: str = Field(min_length=1, description="URI-reference of the emitting service")
    subject: str = Field(min_length=1, description="Aggregate id; also the Kafka message key")
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)


def new_envelope(
    *, type: str, source: str, subject: str, time: datetime, data: BaseModel
) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type=type,
        source=source,
        subject=subject,
        time=time,
        data=data.model_dump(mode="json"),
    )
