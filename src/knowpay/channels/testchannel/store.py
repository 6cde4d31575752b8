"""The test gateway's own book of trades.

These tables are the gateway's database, not knowpay's: they live in a database of their
own (a separate file beside an SQLite database; their own tables on PostgreSQL), are created
by the store rather than by knowpay's migrations, and are written in their own transactions,
as a remote gateway commits independently of knowpay.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from knowpay.kit.config import Settings
from knowpay.kit.db import Database, UTCDateTime, sqlalchemy_url


class GatewayBase(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012


def gateway_database_url(knowpay_url: str) -> str:
    """Beside an SQLite file, a file of its own; on PostgreSQL, the same database."""
    url = make_url(sqlalchemy_url(knowpay_url))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        database = url.database
        stem = database[:-3] if database.endswith(".db") else database
        return f"sqlite:///{stem}-test-gateway.db"
    return knowpay_url


class TestGatewayTrade(GatewayBase):
    __tablename__ = "test_gateway_trades"
    __test__ = False  # not a pytest class

    out_trade_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway_trade_no: Mapped[str] = mapped_column(String(64), unique=True)
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    refunded_minor: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]


class TestGatewayRefund(GatewayBase):
    __tablename__ = "test_gateway_refunds"
    __test__ = False

    out_refund_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    out_trade_no: Mapped[str] = mapped_column(String(64), index=True)
    amount_minor: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class TestGatewayStore:
    """The test gateway's state, committed in its own short transactions."""

    __test__ = False

    def __init__(self, settings: Settings) -> None:
        # A handful of connections: the simulated gateway must not eat knowpay's budget.
        own = settings.model_copy(
            update={
                "database_url": gateway_database_url(settings.database_url),
                "db_pool_size": 2,
                "db_max_overflow": 3,
            }
        )
        self._database = Database(own)
        GatewayBase.metadata.create_all(self._database.engine, checkfirst=True)

    def dispose(self) -> None:
        self._database.dispose()

    def open_trade(self, trade: TestGatewayTrade) -> TestGatewayTrade:
        """Create the trade, or return the one already opened for this out_trade_no."""
        with self._database.session_scope() as session:
            existing = session.get(TestGatewayTrade, trade.out_trade_no)
            if existing is not None:
                return existing
            session.add(trade)
        return trade

    def get(self, out_trade_no: str) -> TestGatewayTrade | None:
        with self._database.session_scope(read_only=True) as session:
            return session.get(TestGatewayTrade, out_trade_no)

    def by_gateway_no(self, gateway_trade_no: str) -> TestGatewayTrade | None:
        with self._database.session_scope(read_only=True) as session:
            statement = select(TestGatewayTrade).where(
                TestGatewayTrade.gateway_trade_no == gateway_trade_no
            )
            return session.scalars(statement).first()

    def settle(
        self, out_trade_no: str, status: str, now: datetime, failure_code: str | None = None
    ) -> TestGatewayTrade | None:
        """Move a waiting trade to paid, failed or closed; a settled trade stays as it is."""
        with self._database.session_scope() as session:
            trade = session.scalars(
                select(TestGatewayTrade)
                .where(TestGatewayTrade.out_trade_no == out_trade_no)
                .with_for_update()
            ).first()
            if trade is None:
                return None
            if trade.status == "waiting":
                trade.status = status
                trade.failure_code = failure_code
                trade.paid_at = now if status == "paid" else None
            return trade

    def refund(
        self, out_trade_no: str, out_refund_no: str, amount_minor: int, now: datetime
    ) -> TestGatewayRefund | str:
        """Refund part of a paid trade once per out_refund_no; a reason string when refused."""
        with self._database.session_scope() as session:
            existing = session.get(TestGatewayRefund, out_refund_no)
            if existing is not None:
                return existing
            trade = session.scalars(
                select(TestGatewayTrade)
                .where(TestGatewayTrade.out_trade_no == out_trade_no)
                .with_for_update()
            ).first()
            if trade is None or trade.status != "paid":
                return "trade_not_paid"
            if trade.refunded_minor + amount_minor > trade.amount_minor:
                return "refund_exceeds_paid"
            trade.refunded_minor += amount_minor
            refund = TestGatewayRefund(
                out_refund_no=out_refund_no,
                out_trade_no=out_trade_no,
                amount_minor=amount_minor,
                status="succeeded",
                created_at=now,
            )
            session.add(refund)
            return refund

    def get_refund(self, out_refund_no: str) -> TestGatewayRefund | None:
        with self._database.session_scope(read_only=True) as session:
            return session.get(TestGatewayRefund, out_refund_no)

    def paid_between(self, start: datetime, end: datetime) -> list[TestGatewayTrade]:
        with self._database.session_scope(read_only=True) as session:
            statement = select(TestGatewayTrade).where(
                TestGatewayTrade.paid_at >= start, TestGatewayTrade.paid_at < end
            )
            return list(session.scalars(statement).all())
