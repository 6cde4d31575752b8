"""Request and response bodies of the accounts domain."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from knowpay.accounts.models import User
from knowpay.kit.masking import mask_email, mask_phone

_LOCALE_PATTERN = r"^[a-z]{2,3}([_-][A-Za-z]{2,4})?([_-][A-Za-z0-9]{2,8})?$"
_PAYMENT_PASSWORD = r"^[0-9]{6}$"  # noqa: S105 - a pattern, not a password
# Deliberately lenient: the platform owns its users' addresses; knowpay needs a unique login.
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,189}$"


class UserCreate(BaseModel):
    """A buyer (or a creator) registered by an app."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "li.lei@example.com",
                    "password": "correct horse battery",
                    "phone": "+8613800138000",
                    "locale": "zh_CN",
                }
            ]
        },
    )

    email: str = Field(pattern=EMAIL_PATTERN, max_length=254)
    password: str = Field(min_length=8, max_length=128)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9]{5,20}$")
    locale: str = Field(default="zh_CN", pattern=_LOCALE_PATTERN, max_length=16)
    role: Literal["buyer", "creator"] = "buyer"


class UserOut(BaseModel):
    object: Literal["user"] = "user"
    id: str
    email: str
    role: str
    phone: str | None
    locale: str
    level: str
    app_id: str | None
    has_payment_password: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User, *, masked: bool = False) -> UserOut:
        """The user as shown to a caller; `masked` hides most of the email and phone."""
        return cls(
            id=user.id,
            email=mask_email(user.email) if masked else user.email,
            role=user.role,
            phone=mask_phone(user.phone) if masked and user.phone else user.phone,
            locale=user.locale,
            level=user.level,
            app_id=user.app_id,
            has_payment_password=user.payment_password_hash is not None,
            created_at=user.created_at,
        )


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=128)
    grant_type: Literal["password"] | None = None


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int


class PaymentPasswordSet(BaseModel):
    """Set (first time) or change (with `current_password`) the 6-digit payment password."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"new_password": "482913"},
                {"current_password": "482913", "new_password": "730215"},
            ]
        },
    )

    new_password: str = Field(pattern=_PAYMENT_PASSWORD)
    current_password: str | None = Field(default=None, max_length=6)

    @field_validator("new_password")
    @classmethod
    def _not_trivial(cls, value: str) -> str:
        if len(set(value)) == 1 or value in "0123456789" or value in "9876543210":
            raise ValueError("choose a payment password that is not a run or a repeat")
        return value


class PaymentPasswordVerify(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(max_length=6)


class PaymentPasswordStatus(BaseModel):
    object: Literal["payment_password"] = "payment_password"
    is_set: bool
    verified: bool = False
    locked_until: datetime | None = None


class AppOut(BaseModel):
    object: Literal["app"] = "app"
    id: str
    name: str
    created_at: datetime
    disabled_at: datetime | None


class AppCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)


class AppWithKeyOut(AppOut):
    api_key: str = Field(description="Shown once; only its hash is stored.")
    api_key_id: str
