"""Bearer-token (JWT, HS256) authentication with roles: reader < writer < admin."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import IntEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.runtime.errors import Forbidden, Unauthorized
from services.runtime.settings import Settings


class Role(IntEnum):
    READER = 1
    WRITER = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r}; expected reader, writer or admin") from None


def issue_token(settings: Settings, *, subject: str, roles: list[Role], now: datetime,
                ttl: timedelta = timedelta(hours=8)) -> str:
    claims = {
        "sub": subject, "roles": [r.name.lower() for r in roles], "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience, "iat": int(now.timestamp()), "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


class Principal:
    def __init__(self, subject: str, roles: set[Role]) -> None:
        self.subject = subject
        self.roles = roles

    def has(self, role: Role) -> bool:
        return any(r >= role for r in self.roles)


def decode_token(settings: Settings, token: str) -> Principal:
    try:
        claims: dict[str, Any] = jwt.decode(
            token, settings.jwt_secret, algorithms=["HS256"], audience=settings.jwt_audience,
            issuer=settings.jwt_issuer, options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the bearer token has expired") from None
    except jwt.InvalidTokenError as error:
        raise Unauthorized(f"the bearer token is not valid: {error}") from None
    return Principal(str(claims["sub"]), _roles(claims.get("roles", [])))


def _roles(claim: object) -> set[Role]:
    """The roles a token's ``roles`` claim names; unknown names are ignored, a claim that is
    not a list of names makes the token invalid."""
    if not isinstance(claim, list) or not all(isinstance(name, str) for name in claim):
        raise Unauthorized(f"the bearer token is not valid: its roles claim must be a list of role names, "
                           f"not {claim!r:.60}")
    roles = set()
    for name in claim:
        try:
            roles.add(Role.parse(name))
        except ValueError:
            continue
    return roles


_bearer = HTTPBearer(auto_error=False, description="JWT issued by `estate token`")


def require(role: Role):  # type: ignore[no-untyped-def]
    """A route dependency: the caller must hold ``role`` (or a higher one)."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        settings: Settings = request.app.state.runtime.settings
        if not settings.auth_enabled:
            return Principal("anonymous", {Role.ADMIN})
        if credentials is None:
            raise Unauthorized("send 'Authorization: Bearer <token>'; get one with `estate token`")
        principal = decode_token(settings, credentials.credentials)
        if not principal.has(role):
            raise Forbidden(f"this needs the {role.name.lower()} role; the token has "
                            f"{sorted(r.name.lower() for r in principal.roles) or 'none'}")
        return principal

    return dependency


Reader = Annotated[Principal, Depends(require(Role.READER))]
Writer = Annotated[Principal, Depends(require(Role.WRITER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
