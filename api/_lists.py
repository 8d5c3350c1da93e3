"""List parameters and the page envelope shared by every list route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

import store

T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    """One page of a list: ``next_cursor`` fetches the next page; null on the last."""

    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class ListArgs:
    limit: int
    cursor: str | None
    sort: str | None

    def query(self, default_sort: str = "-created_at") -> store.ListQuery:
        """The store query, with this resource's default sort when the request names none."""
        return store.ListQuery(limit=self.limit, cursor=self.cursor, sort=self.sort or default_sort)


def list_args(
    limit: Annotated[int, Query(ge=1, le=store.MAX_LIMIT, description="Items per page.")] = store.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=1024, description="`next_cursor` of the previous page.")] = None,
    sort: Annotated[
        str | None,
        Query(max_length=64, pattern=r"^-?[a-z_]+$", description="Field to sort by; prefix `-` for descending."),
    ] = None,
) -> ListArgs:
    return ListArgs(limit=limit, cursor=cursor, sort=sort)


ListParams = Annotated[ListArgs, Depends(list_args)]


def page_out(page: store.Page, convert) -> dict:
    """The response body of a page, each row passed through ``convert``."""
    return {"items": [convert(row) for row in page.items], "next_cursor": page.next_cursor}
