"""timestamptz on asyncpg without its infinities.

asyncpg's binary codec sends the two extreme datetimes it can hold as PostgreSQL's
`-infinity` and `infinity`: `0001-01-01T00:00:00Z`, a joinedTime the seed's pattern admits,
was stored as `-infinity`, and every read of it then failed. Our codec sends every instant as
the number it is (microseconds since 2000-01-01 UTC, PostgreSQL's own binary form), and reads
an infinity that an earlier version stored as the extreme instant it stood for.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# What an infinity stands for, by its binary and its text form.
TEXT_EXTREMES = {
    "infinity": datetime.max.replace(tzinfo=UTC),
    "-infinity": datetime.min.replace(tzinfo=UTC),
}
_EXTREMES = {2**63 - 1: TEXT_EXTREMES["infinity"], -(2**63): TEXT_EXTREMES["-infinity"]}


def encode(value: datetime) -> tuple[int]:
    if value.tzinfo is None:
        raise ValueError("naive datetime given; use an aware UTC datetime")
    return ((value - _PG_EPOCH) // _MICROSECOND,)


def decode(value: tuple[int]) -> datetime:
    (microseconds,) = value
    extreme = _EXTREMES.get(microseconds)
    return extreme if extreme is not None else _PG_EPOCH + timedelta(microseconds=microseconds)


async def set_codec(conn: Any) -> None:
    """On one asyncpg connection."""
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=encode, decoder=decode, format="tuple"
    )


def install(sync_engine: sa.Engine) -> None:
    """On every connection an engine over asyncpg opens."""

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.run_async(set_codec)
