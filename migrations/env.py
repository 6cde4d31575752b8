"""Alembic environment: knowpay passes its own engine in `config.attributes["engine"]`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from knowpay.models import metadata

config = context.config
engine = config.attributes.get("engine")


def _is_knowpays(name: str | None, type_: str, *_: object) -> bool:
    """The test gateway's tables share a PostgreSQL database but are not knowpay's schema."""
    return not (type_ == "table" and name is not None and name.startswith("test_gateway_"))


def run_migrations() -> None:
    if not isinstance(engine, Engine):
        raise RuntimeError("run migrations through `knowpay migrate`, which supplies the engine")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_name=_is_knowpays,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
