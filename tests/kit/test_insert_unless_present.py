"""`insert_unless_present` builds its statement once per table and set of columns: each
call's values, and only its columns, reach the row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from knowpay.kit.db import Database, insert_unless_present
from knowpay.kit.idempotency_models import IdempotencyRecord

pytestmark = pytest.mark.db

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _claim(key: str, **extra: object) -> dict[str, object]:
    return {
        "scope": "scope",
        "key": key,
        "request_fingerprint": f"fp-{key}",
        "state": "in_progress",
        "locked_until": NOW + timedelta(seconds=30),
        "created_at": NOW,
        "expires_at": NOW + timedelta(days=1),
        **extra,
    }


def test_rows_of_two_column_sets_on_one_table_each_get_their_own_values(
    database: Database,
) -> None:
    unique = ("scope", "key")
    with database.session_scope() as session:
        answered = insert_unless_present(
            session, IdempotencyRecord, _claim("b", response_status=201), unique=unique
        )
        plain = insert_unless_present(session, IdempotencyRecord, _claim("a"), unique=unique)
        again = insert_unless_present(session, IdempotencyRecord, _claim("c"), unique=unique)
        taken = insert_unless_present(
            session, IdempotencyRecord, _claim("a", response_status=500), unique=unique
        )
        assert None not in (plain, answered, again)
        assert taken is None
    with database.session_scope() as session:
        rows = {r.key: r for r in session.query(IdempotencyRecord).all()}
    assert {key: (r.request_fingerprint, r.response_status) for key, r in rows.items()} == {
        "a": ("fp-a", None),
        "b": ("fp-b", 201),
        "c": ("fp-c", None),
    }
    assert rows["c"].locked_until == NOW + timedelta(seconds=30)
