"""Shared list-response shapes and the integer types of every route's ids and paging values.

Out-of-range numbers never reach the database: SQLite raises OverflowError past 2^63 - 1, and
PostgreSQL's INTEGER columns (most primary keys) reject values past 2^31 - 1 with "integer out of
range". So each id, offset and cursor is bounded by the column it is compared with:

- ``Id``: primary keys of INTEGER columns (groups, members, tags, channels, staff, communities).
- ``BigId``: primary keys of BIGINT columns (events, audit entries) and the cursors over them.
- ``Offset``: rows to skip (PostgreSQL's OFFSET is a BIGINT).

A path id out of its range answers 404 (no such object can exist, see api/errors.py); a query
value out of range answers 422 naming the parameter.
"""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from annotated_types import Ge, Le
from fastapi import Depends, Query
from pydantic import BaseModel

T = TypeVar("T")

MAX_LIMIT = 200
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

Id = Annotated[int, Ge(1), Le(INT32_MAX)]
"""The id of a row whose key is an INTEGER column (use in paths, queries and bodies)."""
BigId = Annotated[int, Ge(1), Le(INT64_MAX)]
"""The id of a row whose key is a BIGINT column (events, audit entries)."""
Cursor = Annotated[int, Ge(0), Le(INT64_MAX)]
"""``next_cursor`` of the previous page of an id-ordered log."""
Offset = Annotated[int, Ge(0), Le(INT64_MAX)]
Limit = Annotated[int, Ge(1), Le(MAX_LIMIT)]


class Page(BaseModel, Generic[T]):
    """One page of a list; ``total`` counts every row matching the filters."""

    items: list[T]
    total: int
    limit: int
    offset: int


class CursorPage(BaseModel, Generic[T]):
    """One page of an append-only log; pass ``next_cursor`` as ``cursor`` for the next page
    (null when there is none)."""

    items: list[T]
    next_cursor: int | None


class PageParams(BaseModel):
    limit: int
    offset: int


def page_params(
    limit: Annotated[Limit, Query(description="Rows per page")] = 50,
    offset: Annotated[Offset, Query(description="Rows to skip")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


Paging = Annotated[PageParams, Depends(page_params)]
