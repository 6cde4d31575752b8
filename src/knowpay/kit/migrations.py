"""Run Alembic from code: `knowpay migrate`, `knowpay serve` on SQLite, and the tests."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def migrations_dir() -> Path:
    """Where the migration scripts live: inside the wheel, or at the repository root."""
    for candidate in (_PACKAGE_ROOT / "_migrations", _PACKAGE_ROOT.parent.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("knowpay's migrations folder was not found")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database up to `revision` (default: the newest)."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return revision_of(connection)


def revision_of(connection: Connection) -> str | None:
    """The revision the database was last migrated to (None: never)."""
    return MigrationContext.configure(connection).get_current_revision()


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest revision this code knows: what the database must be at to run it."""
    return ScriptDirectory(str(migrations_dir())).get_current_head()
