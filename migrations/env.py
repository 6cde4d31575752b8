"""Alembic environment: knowpay passes its own engine in `config.attributes["engine"]`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from knowpay.models import metadata

config = context.config
engine = config.attributes.get("engine")


def run_migrations() -> None:
    if not isinstance(engine, Engine):
        raise RuntimeError("run migrations through `knowpay migrate`, which supplies the engine")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
