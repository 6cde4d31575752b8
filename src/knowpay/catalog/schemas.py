"""Request and response bodies of the catalog."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from knowpay.catalog.models import Product
from knowpay.catalog.states import ProductKind
from knowpay.kit.schemas import MoneyIn, MoneyOut

_MAX_DAYS = 36600


def _unique_currencies(prices: list[MoneyIn] | None) -> None:
    if prices is None:
        return
    currencies = [p.currency for p in prices]
    if len(set(currencies)) != len(currencies):
        raise ValueError("prices: one price per currency")


class ProductCreate(BaseModel):
    """A new product. `status` defaults to `published` (on sale at once), like Stripe's
    `active=true`; send `draft` to prepare it first."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Python 数据分析 30 讲",
                    "kind": "course",
                    "prices": [
                        {"amount": 9900, "currency": "CNY"},
                        {"amount": 1499, "currency": "USD"},
                    ],
                },
                {
                    "title": "年度会员",
                    "kind": "membership",
                    "period_days": 365,
                    "prices": [{"amount": 19800, "currency": "CNY"}],
                    "status": "draft",
                },
            ]
        },
    )

    title: str = Field(min_length=1, max_length=200)
    kind: ProductKind
    prices: list[MoneyIn] = Field(default_factory=list, max_length=50)
    period_days: int | None = Field(default=None, ge=1, le=_MAX_DAYS, strict=True)
    description: str | None = Field(default=None, max_length=10000)
    creator_id: str | None = Field(default=None, max_length=40)
    status: Literal["draft", "published"] = "published"

    @model_validator(mode="after")
    def _consistent(self) -> ProductCreate:
        _unique_currencies(self.prices)
        if self.kind is ProductKind.MEMBERSHIP and self.period_days is None:
            raise ValueError("period_days: a membership needs its period in days")
        return self


class ProductUpdate(BaseModel):
    """Change a product; `prices` replaces the whole price list."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10000)
    prices: list[MoneyIn] | None = Field(default=None, max_length=50)
    period_days: int | None = Field(default=None, ge=1, le=_MAX_DAYS, strict=True)

    @model_validator(mode="after")
    def _consistent(self) -> ProductUpdate:
        _unique_currencies(self.prices)
        return self


class ProductOut(BaseModel):
    object: Literal["product"] = "product"
    id: str
    title: str
    description: str | None
    kind: str
    status: str
    period_days: int | None
    prices: list[MoneyOut]
    creator_id: str | None
    app_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, product: Product) -> ProductOut:
        return cls(
            id=product.id,
            title=product.title,
            description=product.description,
            kind=product.kind,
            status=product.status,
            period_days=product.period_days,
            prices=[MoneyOut(amount=p.amount_minor, currency=p.currency) for p in product.prices],
            creator_id=product.creator_id,
            app_id=product.app_id,
            created_at=product.created_at,
            updated_at=product.updated_at,
        )
