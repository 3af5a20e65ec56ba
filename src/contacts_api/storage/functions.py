"""SQL functions the two databases spell differently.

`fold_case(text)`: text with case folded by Unicode's rules, for caseless matching.
PostgreSQL's own `lower()` does that (by the database's locale); SQLite's folds ASCII letters
only, so on SQLite every connection gets a deterministic function of that name, Python's
`str.casefold` (`register_sqlite_functions`, called where the connection's pragmas are set),
which also folds the Greek final sigma with the plain one, as PostgreSQL's lower() of a
capital sigma gives the plain one.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import GenericFunction


class fold_case(GenericFunction[str]):  # noqa: N801 -- SQL function names are lower case
    type = sa.String()
    inherit_cache = True


@compiles(fold_case, "postgresql")
def _postgresql_lower(element: fold_case, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


def _fold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def register_sqlite_functions(dbapi_connection: Any) -> None:
    """The functions above on one SQLite connection (sqlite3's, or an adapter of it)."""
    dbapi_connection.create_function("fold_case", 1, _fold, deterministic=True)
