"""Cursor pagination at the API edge: a page ends with an opaque cursor naming the last key."""

from __future__ import annotations

import base64
import binascii
import re

from services.runtime.errors import InvalidInput


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, key_pattern: str | re.Pattern[str]) -> str:
    """The key a cursor names; InvalidInput if it is not one this API issued (a key of the
    collection's form, base64url-encoded)."""
    try:
        key = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if not re.match(key_pattern, key):
        raise InvalidInput("the cursor is not one this API issued; start again without it")
    return key
