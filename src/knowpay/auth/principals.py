"""The callers knowpay knows and what each may see."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What a caller is; staff roles decide which staff actions are allowed."""

    APP = "app"
    BUYER = "buyer"
    CREATOR = "creator"
    ADMIN = "admin"
    FINANCE = "finance"
    SUPPORT = "support"


STAFF_ROLES = frozenset({Role.ADMIN, Role.FINANCE, Role.SUPPORT})
PERSON_ROLES = frozenset({Role.BUYER, Role.CREATOR, *STAFF_ROLES})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    For an app, `id` is the app id and `app_id` the same; for a person, `id` is the user id
    and `app_id` the app that registered them (None for staff).
    """

    id: str
    role: Role
    app_id: str | None = None

    @property
    def is_app(self) -> bool:
        return self.role is Role.APP

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def actor(self) -> str:
        """How timelines, statements and the audit name who acted."""
        return f"{self.role.value}:{self.id}"

    @property
    def scope_key(self) -> str:
        """What idempotency keys and rate limits are scoped to."""
        return f"{self.role.value}:{self.id}"
