"""Request and response bodies of gateway credentials (values go in, never come out)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from knowpay.credentials.models import GatewayCredential
from knowpay.kit.schemas import unicode_text


class CredentialsUpdate(BaseModel):
    """Fields of one gateway's settings to store encrypted; null removes a stored field."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "fields": {
                        "app_id": "2021000000000000",
                        "private_key": "-----BEGIN PRIVATE KEY-----\n…",
                        "seller_id": None,
                    }
                }
            ]
        },
    )

    fields: dict[str, str | None] = Field(min_length=1, max_length=40)

    @field_validator("fields")
    @classmethod
    def _text(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        # JSON can escape a lone surrogate ("\ud800"), which can be neither sealed, stored
        # nor named back in a problem. The message quotes no value.
        if not all(unicode_text(name, item or "") for name, item in value.items()):
            raise ValueError("field names and values are Unicode text")
        return value


class StoredField(BaseModel):
    name: str
    fingerprint: str = Field(description="`sha256:` + 12 hex digits of the value's SHA-256")
    updated_at: datetime


Applies = Literal["live", "on_restart"]


def applies_when(refresh_s: float) -> Applies:
    """When running processes apply stored credentials, given `credentials_refresh_s`."""
    return "live" if refresh_s > 0 else "on_restart"


class GatewayCredentialsOut(BaseModel):
    object: Literal["gateway_credentials"] = "gateway_credentials"
    gateway: str
    fields: list[StoredField]
    applies: Applies = Field(
        description="`live`: every knowpay process rebuilds the gateway's channels within "
        "`applies_within_s` seconds of a change (`KNOWPAY_CREDENTIALS_REFRESH_S`); "
        "`on_restart`: that check is off and processes read stored credentials when they start",
    )
    applies_within_s: float | None = Field(
        description="How often each process looks for a change; null with `on_restart`",
    )

    @classmethod
    def of(
        cls, gateway: str, rows: list[GatewayCredential], refresh_s: float
    ) -> GatewayCredentialsOut:
        return cls(
            gateway=gateway,
            fields=[
                StoredField(name=r.field, fingerprint=r.fingerprint, updated_at=r.updated_at)
                for r in rows
                if r.gateway == gateway
            ],
            applies=applies_when(refresh_s),
            applies_within_s=refresh_s if refresh_s > 0 else None,
        )
