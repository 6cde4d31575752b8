"""Cursor pagination over time-ordered ids: newest first, `limit` and `starting_after`."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import Integer, Select, String, bindparam
from sqlalchemy.orm import InstrumentedAttribute, Session

T = TypeVar("T")
Row = TypeVar("Row")


class Page(BaseModel, Generic[T]):
    """A list response: `{"object": "list", "data": [...], "has_more": bool}`."""

    object: str = "list"
    data: list[T]
    has_more: bool


_ID = r"^[A-Za-z0-9_]+$"
"""What an id looks like (`ord_01m8…`): a cursor of anything else names no object."""


class PageParams(BaseModel):
    limit: int = Field(default=10, ge=1, le=100)
    starting_after: str | None = Field(default=None, max_length=64, pattern=_ID)


async def page_params(
    limit: Annotated[int, Query(ge=1, le=100, description="How many objects, 1 to 100")] = 10,
    starting_after: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=_ID,
            description="The id of an object of this list: the page starts after it",
        ),
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, starting_after=starting_after)


def page_of(
    session: Session,
    statement: Select[Any],
    id_column: InstrumentedAttribute[str],
    params: PageParams,
    *,
    bound: Mapping[str, Any] | None = None,
) -> tuple[list[Any], bool]:
    """One page of `statement`, newest first. `starting_after` is a position, not a lookup:
    the page holds the objects created before that id (ids sort by creation), so a cursor
    whose object was deleted, or has left a filtered list, still pages on; and whether an id
    exists elsewhere (another app's) is never told.

    `bound`: `statement` is one built once, with these values for its bound parameters; its
    page is built once too, the cursor and the limit bound (see `kit.db.insert_unless_present`
    for why)."""
    if bound is None:
        rows = session.scalars(paginate_query(statement, id_column, params)).all()
        return split_page(rows, params)
    paged = _paginated(statement, id_column, with_cursor=params.starting_after is not None)
    values = {**bound, "page_limit": params.limit + 1, "page_cursor": params.starting_after}
    return split_page(session.scalars(paged, values).all(), params)


def paginate_query(
    statement: Select[Any], id_column: InstrumentedAttribute[str], params: PageParams
) -> Select[Any]:
    """Newest first, after the cursor, one more row than asked to learn `has_more`."""
    if params.starting_after:
        statement = statement.where(id_column < params.starting_after)
    return statement.order_by(id_column.desc()).limit(params.limit + 1)


# Keyed by the statement object itself: bounded, so that a statement built per call (a misuse
# of `bound`) costs a rebuild, not memory that grows with every request.
@functools.lru_cache(maxsize=64)
def _paginated(
    statement: Select[Any], id_column: InstrumentedAttribute[str], *, with_cursor: bool
) -> Select[Any]:
    """`paginate_query`'s page of a statement built once, its cursor and limit bound."""
    if with_cursor:
        statement = statement.where(id_column < bindparam("page_cursor", type_=String))
    return statement.order_by(id_column.desc()).limit(bindparam("page_limit", type_=Integer))


def split_page(rows: Sequence[Row], params: PageParams) -> tuple[list[Row], bool]:
    """Cut the extra row off and say whether there was one."""
    items = list(rows)
    return items[: params.limit], len(items) > params.limit
