"""Shared fixtures: a migrated database per test run (SQLite, or PostgreSQL when
KNOWPAY_TEST_DATABASE_URL names one), a frozen clock, the app and its callers."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from knowpay.app import create_app
from knowpay.channels.testchannel.store import GatewayBase
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import PasswordHashSettings, RateLimitSettings, Settings, load_settings
from knowpay.kit.db import Base, Database, sqlalchemy_url
from knowpay.kit.migrations import upgrade
from tests.builders import Builders

PG_URL_ENV = "KNOWPAY_TEST_DATABASE_URL"
FAST_HASHING = PasswordHashSettings(time_cost=1, memory_cost_kib=64, parallelism=1)
_LOTS = "100000/minute"


def relaxed_rate_limits() -> RateLimitSettings:
    """Limits the suite's bursts of callers never reach (their own key prefix, should Redis
    be configured). tests/kit/test_rate_limits.py runs with the production defaults."""
    return RateLimitSettings(
        api_per_key=_LOTS,
        api_per_person=_LOTS,
        api_per_ip=_LOTS,
        login_per_ip=_LOTS,
        login_per_account=_LOTS,
        payment_password=_LOTS,
        key_prefix=f"knowpay-test:{uuid.uuid4().hex[:12]}",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that touches the database is marked `db`, so it can be rerun on PostgreSQL."""
    for item in items:
        if "database" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


def _postgres_url() -> str | None:
    url = os.environ.get(PG_URL_ENV)
    return url if url and url.startswith(("postgresql", "postgres://")) else None


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database for this test run (and xdist worker)."""
    pg_url = _postgres_url()
    if pg_url is None:
        template = tmp_path_factory.mktemp("db") / "template.db"
        url = f"sqlite:///{template}"
        database = Database(load_settings(database_url=url))
        upgrade(database.engine)
        database.dispose()
        yield url
        return
    name = f"knowpay_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(sqlalchemy_url(pg_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(sqlalchemy_url(pg_url)).set(database=name).render_as_string(hide_password=False)
    url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    database = Database(load_settings(database_url=url))
    upgrade(database.engine)
    database.dispose()
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _fresh_url(database_url: str, tmp_path: Path) -> str:
    if database_url.startswith("sqlite"):
        copy = tmp_path / "knowpay.db"
        shutil.copyfile(database_url.removeprefix("sqlite:///"), copy)
        return f"sqlite:///{copy}"
    return database_url


def _empty_postgres(database: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        # The test gateway's own tables (created when first used): its trades of an earlier
        # test would show on this test's bills.
        for table in GatewayBase.metadata.sorted_tables:
            if connection.execute(text(f"SELECT to_regclass('{table.name}')")).scalar():
                connection.execute(text(f'TRUNCATE "{table.name}" RESTART IDENTITY CASCADE'))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=_fresh_url(database_url, tmp_path),
        secret_key="test-secret-key-0123456789-abcdefghijklmnop",
        password_hash=FAST_HASHING,
        public_url="http://testserver",
        rate_limits=relaxed_rate_limits(),
    )


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    """An empty, migrated database for one test."""
    database = Database(settings)
    if database.dialect == "postgresql":
        _empty_postgres(database)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def app(settings: Settings, clock: FrozenClock, database: Database) -> FastAPI:
    return create_app(settings, clock=clock, database=database, run_worker=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def build(client: TestClient, database: Database, clock: FrozenClock) -> Builders:
    return Builders(client, database, clock)
