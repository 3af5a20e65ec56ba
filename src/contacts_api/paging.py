"""Zero-based page + limit, as every iClosed listing takes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec
from msgspec import Meta

# Ids live in 32-bit INTEGER columns on PostgreSQL: a larger one can match nothing, and
# refusing it up front keeps it from reaching the driver as an overflow.
MAX_ID = 2**31 - 1
Id = Annotated[int, Meta(ge=1, le=MAX_ID)]
PageNumber = Annotated[int, Meta(ge=0, le=10_000_000, description="Zero-based page number")]
Limit = Annotated[int, Meta(ge=1, le=100, description="Items per page (1-100)")]

DEFAULT_LIMIT = 20


class PageQuery(msgspec.Struct, kw_only=True):
    """`page` (from 0) and `limit` (1-100, default 20)."""

    page: PageNumber | None = 0
    limit: Limit | None = DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class Page:
    """A validated page: which slice of the ordered matches to return."""

    number: int = 0
    limit: int = DEFAULT_LIMIT

    @property
    def offset(self) -> int:
        return self.number * self.limit

    @classmethod
    def from_values(cls, values: dict[str, object]) -> Page:
        number = values.get("page", 0)
        limit = values.get("limit", DEFAULT_LIMIT)
        assert isinstance(number, int) and isinstance(limit, int)
        return cls(number, limit)
