"""Short-lived signed access tokens (JWT, HS256) for buyers, creators and staff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from knowpay.auth.principals import PERSON_ROLES, Principal, Role
from knowpay.kit.crypto import derive_key
from knowpay.kit.errors import Unauthorized

_ISSUER = "knowpay"
_ALGORITHM = "HS256"


class InvalidToken(Unauthorized):
    code, title = "invalid_token", "The access token is invalid"


class ExpiredToken(Unauthorized):
    code, title = "token_expired", "The access token has expired"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


class TokenService:
    """Issues and checks tokens; time comes from the caller so tests can move it."""

    def __init__(self, master_key: str, ttl_s: int) -> None:
        self._key = derive_key(master_key, "knowpay/access-token/v1")
        self._ttl_s = ttl_s

    def issue(self, principal: Principal, now: datetime) -> IssuedToken:
        claims = {
            "iss": _ISSUER,
            "sub": principal.id,
            "role": principal.role.value,
            "app": principal.app_id,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self._ttl_s)).timestamp()),
        }
        return IssuedToken(jwt.encode(claims, self._key, algorithm=_ALGORITHM), self._ttl_s)

    def verify(self, token: str, now: datetime) -> Principal:
        """The principal a token names; InvalidToken or ExpiredToken otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                issuer=_ISSUER,
                # Time is checked below against the injected clock, not the library's.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "require": ["exp", "iat", "sub", "iss"],
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken("The access token is malformed or its signature is wrong.") from exc
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= int(now.timestamp()):
            raise ExpiredToken("The access token has expired; log in again.")
        try:
            role = Role(str(claims.get("role")))
        except ValueError as exc:
            raise InvalidToken("The access token names no known role.") from exc
        if role not in PERSON_ROLES:
            raise InvalidToken("The access token names no known role.")
        app_id = claims.get("app")
        return Principal(
            id=str(claims["sub"]), role=role, app_id=app_id if isinstance(app_id, str) else None
        )
