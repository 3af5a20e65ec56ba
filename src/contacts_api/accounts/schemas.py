"""Who is calling: the account and user behind an API key."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """The owner of a valid API key; every request is scoped to `account_id`."""

    account_id: int
    user_id: int
    key_id: int
