"""How the CLI tells a person what the platform refused: a problem answer's detail and the
fields it names, or the start of whatever else came back."""

from __future__ import annotations

import httpx


def describe(response: httpx.Response) -> str:
    """``HTTP <status>: <detail> (<field>: <message>; ...)``."""
    try:
        problem = response.json()
        detail = str(problem.get("detail", ""))
        where = "; ".join(f"{e['location']}: {e['message']}" for e in problem.get("errors") or [])
    except (ValueError, AttributeError, KeyError, TypeError):
        detail, where = response.text[:200], ""
    return f"HTTP {response.status_code}: {detail}" + (f" ({where})" if where else "")
