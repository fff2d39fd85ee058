"""The errors every service raises, and the one shape every API answers them in.

Answers follow RFC 9457 (``application/problem+json``): ``type``, ``title``, ``status``,
``detail``, ``instance``, and for invalid input an ``errors`` list saying what and where.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    location: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"location": self.location, "message": self.message}


class ProblemError(Exception):
    """Base: an expected failure with an HTTP meaning."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []

    def body(self, instance: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"/problems/{self.code}", "title": self.title, "status": self.status,
            "detail": self.detail, "instance": instance,
        }
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        return body


class InvalidInput(ProblemError):
    status, code, title = 422, "invalid-input", "The input is not valid"


class NotFound(ProblemError):
    status, code, title = 404, "not-found", "Not found"


class Conflict(ProblemError):
    status, code, title = 409, "conflict", "Conflict with the current state"


class PreconditionFailed(ProblemError):
    status, code, title = 412, "precondition-failed", "The resource has changed"


class PayloadTooLarge(ProblemError):
    status, code, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(ProblemError):
    status, code, title = 415, "unsupported-media-type", "Unsupported media type"


class Unauthorized(ProblemError):
    status, code, title = 401, "unauthorized", "Authentication required"


class Forbidden(ProblemError):
    status, code, title = 403, "forbidden", "Not allowed"


class ServiceUnavailable(ProblemError):
    """A dependency (the store) does not answer; the same request may succeed later."""

    status, code, title = 503, "unavailable", "Service temporarily unavailable"


class InternalError(ProblemError):
    """An unexpected failure: the answer says only that, and an id to find it in the log."""

    status, code, title = 500, "internal-error", "Internal server error"

    def __init__(self, error_id: str) -> None:
        super().__init__(f"An unexpected error occurred; quote error id {error_id} when reporting it.")
        self.error_id = error_id

    def body(self, instance: str) -> dict[str, Any]:
        return {**super().body(instance), "error_id": self.error_id}
