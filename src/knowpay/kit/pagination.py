"""Cursor pagination over time-ordered ids: newest first, `limit` and `starting_after`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")
Row = TypeVar("Row")


class Page(BaseModel, Generic[T]):
    """A list response: `{"object": "list", "data": [...], "has_more": bool}`."""

    object: str = "list"
    data: list[T]
    has_more: bool


class PageParams(BaseModel):
    limit: int = Field(default=10, ge=1, le=100)
    starting_after: str | None = Field(default=None, max_length=64)


async def page_params(
    limit: Annotated[int, Query(ge=1, le=100, description="How many objects, 1 to 100")] = 10,
    starting_after: Annotated[
        str | None, Query(max_length=64, description="The id after which the page starts")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, starting_after=starting_after)


def paginate_query(
    statement: Select[Any], id_column: InstrumentedAttribute[str], params: PageParams
) -> Select[Any]:
    """Newest first, after the cursor, one more row than asked to learn `has_more`."""
    if params.starting_after:
        statement = statement.where(id_column < params.starting_after)
    return statement.order_by(id_column.desc()).limit(params.limit + 1)


def split_page(rows: Sequence[Row], params: PageParams) -> tuple[list[Row], bool]:
    """Cut the extra row off and say whether there was one."""
    items = list(rows)
    return items[: params.limit], len(items) > params.limit
