"""Each service's OpenAPI document, and the embedded platform's (all services in one app)."""

from __future__ import annotations

from services import registry
from services.runtime.settings import Mode, Settings
from tools.contracts.schemas import Schema


def openapi_documents() -> dict[str, Schema]:
    settings = Settings(mode=Mode.EMBEDDED)
    documents = {name: registry.create_app(settings, [name]).openapi() for name in registry.SERVICES}
    documents["platform"] = registry.create_app(settings).openapi()
    return documents
