"""Every SQL statement of the gateway credentials store. Never commits."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from knowpay.credentials.models import GatewayCredential


def all_rows(
    session: Session, gateway: str | None = None, *, for_update: bool = False
) -> list[GatewayCredential]:
    statement = select(GatewayCredential).order_by(
        GatewayCredential.gateway, GatewayCredential.field
    )
    if gateway is not None:
        statement = statement.where(GatewayCredential.gateway == gateway)
    if for_update:
        statement = statement.with_for_update()
    return list(session.scalars(statement).all())


def revision(session: Session) -> list[tuple[str, str, str]]:
    """What identifies the stored values without opening them: (gateway, field, fingerprint)."""
    statement = select(
        GatewayCredential.gateway, GatewayCredential.field, GatewayCredential.fingerprint
    ).order_by(GatewayCredential.gateway, GatewayCredential.field)
    return [(row.gateway, row.field, row.fingerprint) for row in session.execute(statement)]


def get(session: Session, gateway: str, field: str) -> GatewayCredential | None:
    return session.scalars(
        select(GatewayCredential)
        .where(GatewayCredential.gateway == gateway, GatewayCredential.field == field)
        .with_for_update()
    ).first()


def add(session: Session, row: GatewayCredential) -> None:
    session.add(row)


def remove(session: Session, gateway: str, field: str) -> bool:
    result = session.execute(
        delete(GatewayCredential).where(
            GatewayCredential.gateway == gateway, GatewayCredential.field == field
        )
    )
    return int(getattr(result, "rowcount", 0) or 0) > 0
