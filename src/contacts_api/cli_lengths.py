"""Refuse a CLI value longer than the column that stores it, before any database work.

PostgreSQL rejects such a value with a raw driver error and SQLite stores it whole; either
way the operator should instead see bad usage (exit 2) naming the option and its limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
import typer

from contacts_api.validation import js_length

LengthCheck = Callable[[typer.Context, typer.CallbackParam, str | None], str | None]


def column_length(column: sa.Column[Any]) -> int:
    """The most characters `column` holds (its String length)."""
    if not isinstance(column.type, sa.String) or column.type.length is None:
        raise TypeError(f"column {column} has no length limit")
    return column.type.length


def fits(column: sa.Column[Any], *, as_the_api_counts: bool = False) -> LengthCheck:
    """A typer callback refusing a value longer than `column` holds.

    `as_the_api_counts`: a value clients send back (an event's name and link prefix, which a
    create's eventName and linkPrefix select) is measured as the API measures those, in
    UTF-16 units (an emoji is 2), or the event would be stored and never selectable."""
    limit = column_length(column)
    measure = js_length if as_the_api_counts else len
    unit = " (UTF-16 units, as the API counts them)" if as_the_api_counts else ""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
        if value is not None and measure(value) > limit and not ctx.resilient_parsing:
            raise typer.BadParameter(
                f"at most {limit} characters{unit}", param_hint=shown_name(param)
            )
        return value

    return check


def shown_name(param: typer.CallbackParam) -> str:
    """How the operator wrote the parameter: `--link-prefix` for an option, `NAME` otherwise."""
    if param.param_type_name == "option":
        return max(param.opts, key=len)
    return (param.name or "value").upper()
