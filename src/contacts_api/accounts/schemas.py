"""Who is calling: the account and user behind an API key."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec


@dataclass(frozen=True, slots=True)
class Principal:
    """The owner of a valid API key; every request is scoped to `account_id`."""

    account_id: int
    user_id: int
    key_id: int


class UserRead(msgspec.Struct):
    id: int
    email: str
    firstName: str | None
    lastName: str | None


class UserList(msgspec.Struct):
    users: list[UserRead]


class UserListEnvelope(msgspec.Struct):
    """`{"data": {"users": [{id, email, firstName, lastName}]}}`."""

    data: UserList
