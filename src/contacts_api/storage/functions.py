"""SQL functions the two databases spell differently.

`unicode_lower(text)`: lower case by Unicode's rules. PostgreSQL's own `lower()` does that
already (by the database's locale); SQLite's folds ASCII letters only, so on SQLite every
connection gets a deterministic function of that name, Python's `str.lower`
(`register_sqlite_functions`, called where the connection's pragmas are set).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import GenericFunction


class unicode_lower(GenericFunction[str]):  # noqa: N801 -- SQL function names are lower case
    type = sa.String()
    inherit_cache = True


@compiles(unicode_lower, "postgresql")
def _postgresql_lower(element: unicode_lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def register_sqlite_functions(dbapi_connection: Any) -> None:
    """The functions above on one SQLite connection (sqlite3's, or an adapter of it)."""
    dbapi_connection.create_function("unicode_lower", 1, _lower, deterministic=True)
