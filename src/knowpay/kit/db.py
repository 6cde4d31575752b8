"""Database engines, sessions and the declarative base.

Services never commit: the request or task boundary does (see `session_scope` and
`request_session`). On SQLite every writing transaction starts with BEGIN IMMEDIATE so that
two writers queue on the busy timeout instead of failing when one upgrades a read lock.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    Insert,
    MetaData,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DataError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.dml import ReturningInsert
from sqlalchemy.types import TypeDecorator

from knowpay.kit.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Every table's base: constraint names follow one convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), int: BigInteger()}


def sqlalchemy_url(url: str) -> str:
    """Map the documented URL forms to SQLAlchemy's driver URLs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _carries_nul(parameters: Any) -> bool:
    """Whether any text among a statement's parameters (a row, many rows, or the flat list
    of a multi-row INSERT) holds a NUL character."""
    if isinstance(parameters, str):
        return "\x00" in parameters
    if isinstance(parameters, dict):
        return any(_carries_nul(value) for value in parameters.values())
    if isinstance(parameters, list | tuple):
        return any(_carries_nul(value) for value in parameters)
    return False


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "before_cursor_execute")
    def _refuse_nul(
        _connection: Any,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        # PostgreSQL refuses a NUL in any text value (DataError: 422 unstorable_value); SQLite
        # would keep it. The same request gets the same answer on either database.
        if _carries_nul(parameters):
            raise DataError(statement, parameters, ValueError("a NUL character in a text value"))

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get("knowpay_read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(settings: Settings) -> Engine:
    """An engine with pooling and timeouts suited to the database in use."""
    url = make_url(sqlalchemy_url(settings.database_url))
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": settings.sqlite_busy_timeout_ms / 1000,
            },
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_s,
        )
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    options = f"-c statement_timeout={settings.db_statement_timeout_ms}"
    engine = create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5, "options": options, "application_name": "knowpay"},
    )
    _ping_connections_idle_since(engine, IDLE_BEFORE_PING_S)
    return engine


IDLE_BEFORE_PING_S = 5.0
"""A pooled connection idle this long is pinged before it is handed out."""


def _ping_connections_idle_since(engine: Engine, idle_s: float) -> None:
    """Pessimistic disconnect handling for connections that sat idle: SQLAlchemy's
    `pool_pre_ping` pings on every checkout, a round trip per transaction, while a connection
    back in the pool a few milliseconds ago is as good as its last statement. A dead one found
    here is replaced before the request sees it; one that dies in use fails that transaction
    and makes SQLAlchemy invalidate the pool, as with `pool_pre_ping`."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(f"a pooled connection was dead: {error}") from error


class Database:
    """The engine and the session factories of one process."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings)
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(
            self.engine.execution_options(knowpay_read_only=True), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def new_session(self, *, read_only: bool = False) -> Session:
        """A session the caller commits or rolls back."""
        return (self._reader if read_only else self._writer)()

    @contextmanager
    def session_scope(self, *, read_only: bool = False) -> Iterator[Session]:
        """A task boundary: commit on success, roll back on any error."""
        session = self.new_session(read_only=read_only)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


Row = TypeVar("Row", bound="Base")


def insert_unless_present(
    session: Session, model: type[Row], values: dict[str, Any], *, unique: Sequence[str]
) -> Row | None:
    """INSERT … ON CONFLICT (unique) DO NOTHING RETURNING the row, as an object the session
    tracks; None when a row with those unique values already exists (or was just inserted by
    a concurrent transaction). One round trip, and no savepoint to recover from an error."""
    statement = _insert_unless_present_statement(
        session.get_bind().dialect.name, model, tuple(values), tuple(unique)
    )
    return session.scalars(statement, values).first()


@functools.cache
def _insert_unless_present_statement(
    dialect: str, model: type[Row], columns: tuple[str, ...], unique: tuple[str, ...]
) -> ReturningInsert[Row]:
    """Built once per table and set of columns, the values bound at each call: building and
    keying a fresh statement cost more CPU than sending it (docs/benchmarks.md)."""
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return (
        insert(model)
        .values({column: bindparam(column) for column in columns})
        .on_conflict_do_nothing(index_elements=list(unique))
        .returning(model)
    )


def insert_rows(
    session: Session, model: type[Base], rows: dict[str, Any] | list[dict[str, Any]]
) -> None:
    """INSERT one row (a dict) or several (a list) of `model` at once, in the session's
    transaction, by a statement built once per table, not through the unit of work: for rows
    no session reads back as objects (events, audit records, postings). What the session
    holds pending is flushed first, so writes keep their order."""
    session.execute(_plain_insert(model), rows)


@functools.cache
def _plain_insert(model: type[Base]) -> Insert:
    return insert(cast(Table, model.__table__))


__all__ = [
    "Base",
    "BigInteger",
    "Database",
    "UTCDateTime",
    "insert_rows",
    "insert_unless_present",
    "sqlalchemy_url",
]
