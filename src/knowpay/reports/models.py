"""Exchange rates: dated, for reporting in a base currency only (never to price an order)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base, UTCDateTime


class ExchangeRate(Base):
    """One unit of `currency` is worth `rate` units of `base_currency` on `rate_date`."""

    __tablename__ = "exchange_rates"
    __table_args__ = (UniqueConstraint("currency", "base_currency", "rate_date"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    base_currency: Mapped[str] = mapped_column(String(3))
    rate_date: Mapped[date] = mapped_column(Date)
    # Decimal text: SQLite would keep a NUMERIC column as a binary float.
    rate: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))
