"""Refuse a CLI value longer than the column that stores it, or empty, before any database
work.

PostgreSQL rejects an over-long value with a raw driver error and SQLite stores it whole;
an empty account or event name was stored as given, and an event named "" can never be
selected by a create. Either way the operator should instead see bad usage (exit 2) naming
the option and what it takes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
import typer

from contacts_api.validation import js_length

LengthCheck = Callable[[typer.Context, typer.CallbackParam, str | None], str | None]
# A user's address (not a contact's: `owner@localhost`, the default, has no dot in its domain).
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")


def column_length(column: sa.Column[Any]) -> int:
    """The most characters `column` holds (its String length)."""
    if not isinstance(column.type, sa.String) or column.type.length is None:
        raise TypeError(f"column {column} has no length limit")
    return column.type.length


def fits(
    column: sa.Column[Any], *, as_the_api_counts: bool = False, address: bool = False
) -> LengthCheck:
    """A typer callback refusing a value longer than `column` holds, or blank; with
    `address`, one that is not NAME@DOMAIN.

    `as_the_api_counts`: a value clients send back (an event's name and link prefix, which a
    create's eventName and linkPrefix select) is measured as the API measures those, in
    UTF-16 units (an emoji is 2), or the event would be stored and never selectable."""
    limit = column_length(column)
    measure = js_length if as_the_api_counts else len
    unit = " (UTF-16 units, as the API counts them)" if as_the_api_counts else ""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
        if value is None or ctx.resilient_parsing:
            return value
        if not value.strip():
            raise typer.BadParameter("must not be empty", param_hint=shown_name(param))
        if measure(value) > limit:
            raise typer.BadParameter(
                f"at most {limit} characters{unit}", param_hint=shown_name(param)
            )
        if address and not _ADDRESS.fullmatch(value):
            raise typer.BadParameter(
                "expected an email address such as owner@example.com",
                param_hint=shown_name(param),
            )
        return value

    return check


def shown_name(param: typer.CallbackParam) -> str:
    """How the operator wrote the parameter: `--link-prefix` for an option, `NAME` otherwise."""
    if param.param_type_name == "option":
        return max(param.opts, key=len)
    return (param.name or "value").upper()
