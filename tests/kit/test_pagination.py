"""`page_of(bound=...)` pages a statement built once with its values bound; its page
statements are cached by the statement object, in a cache that stays bounded."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, select

from knowpay.entitlements.models import Entitlement
from knowpay.kit.db import Database
from knowpay.kit.pagination import PageParams, _paginated, page_of

pytestmark = pytest.mark.db


def test_statements_built_per_call_do_not_grow_the_page_cache(database: Database) -> None:
    """Misuse (a new statement each call) still pages right, and costs rebuilds, not memory."""
    with database.session_scope(read_only=True) as session:
        for _ in range(300):
            statement = select(Entitlement).where(Entitlement.user_id == bindparam("user_id"))
            rows, has_more = page_of(
                session,
                statement,
                Entitlement.id,
                PageParams(limit=10, starting_after=None),
                bound={"user_id": "usr_nobody"},
            )
            assert (rows, has_more) == ([], False)
    cache = _paginated.cache_info()
    assert cache.maxsize is not None
    assert cache.currsize <= cache.maxsize
