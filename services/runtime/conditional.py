"""Optimistic concurrency over HTTP: a resource's version as its ETag, checked with If-Match.

If-Match uses the strong comparison (RFC 9110, 13.1.1): a weak tag (``W/"3"``) never matches,
so a request carrying one fails its precondition (412) instead of writing.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header

from services.runtime.errors import InvalidInput, PreconditionFailed

_ETAG = re.compile(r'^(W/)?"(\d+)"$')


def etag(version: int) -> str:
    """The strong ETag of a resource at ``version``."""
    return f'"{version}"'


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header asks for; None when there is none, or it is ``*``."""
    if if_match is None or if_match.strip() == "*":
        return None
    found = _ETAG.match(if_match.strip())
    if not found:
        raise InvalidInput(f"If-Match {if_match!r} is not an ETag this API issued (like \"3\")")
    if found.group(1):
        raise PreconditionFailed(f"If-Match {if_match!r} is a weak ETag, which never matches; "
                                 f"send the strong one from the ETag header (like \"{found.group(2)}\")")
    return int(found.group(2))


IfMatch = Annotated[str | None, Header(description='ETag from a previous read, e.g. "3"; '
                                        "a stale or weak one gets 412")]
