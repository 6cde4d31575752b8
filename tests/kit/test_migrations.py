"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from knowpay.kit.db import Database
from knowpay.kit.migrations import current_revision, upgrade
from knowpay.models import metadata


def test_migrated_schema_matches_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                # The test gateway keeps its own tables beside knowpay's on PostgreSQL.
                "include_name": lambda name, type_, _parent: (
                    not (type_ == "table" and str(name).startswith("test_gateway_"))
                ),
            },
        )
        assert compare_metadata(context, metadata) == []


def test_database_is_at_the_newest_revision_and_upgrade_is_idempotent(database: Database) -> None:
    before = current_revision(database.engine)
    assert before is not None
    upgrade(database.engine)
    assert current_revision(database.engine) == before
    assert set(inspect(database.engine).get_table_names()) >= {
        t.name for t in metadata.sorted_tables
    }
