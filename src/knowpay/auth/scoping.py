"""Per-object authorization: a caller who may not see an object is told it does not exist."""

from __future__ import annotations

from knowpay.auth.principals import Principal
from knowpay.kit.errors import NotFound


def can_see(principal: Principal, *, owner_app_id: str | None, owner_user_id: str | None) -> bool:
    """Staff see everything; an app its own objects; a person only what is theirs."""
    if principal.is_staff:
        return True
    if principal.is_app:
        return owner_app_id is not None and owner_app_id == principal.id
    return owner_user_id is not None and owner_user_id == principal.id


def ensure_visible(
    principal: Principal,
    *,
    owner_app_id: str | None,
    owner_user_id: str | None,
    what: str = "object",
    object_id: str = "",
    not_found: type[NotFound] = NotFound,
) -> None:
    """Raise 404 (never 403, which would confirm the object exists) when not visible: pass
    the error a missing object gets, so that the two answers cannot be told apart."""
    if not can_see(principal, owner_app_id=owner_app_id, owner_user_id=owner_user_id):
        raise not_found(f"No such {what}: {object_id}".rstrip(": "))
