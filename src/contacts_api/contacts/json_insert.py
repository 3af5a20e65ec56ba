"""New contacts inserted on PostgreSQL from one JSON array parameter: a statement per batch.

A row is a JSON array of the values of INSERT_COLUMNS (times as ISO 8601 text, `tracking` as
its JSON text: an object would come back with its keys reordered by the JSONB cast); `->>`
takes each value out as text and the statement casts it to the column's type. One parameter
instead of one per value: the statement's text is the same for every batch size, so
asyncpg's prepared statement is reused, and neither SQLAlchemy nor asyncpg process the values
one by one (see the measurements where it is used).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from contacts_api.storage.models import LIVE_EMAIL_KEY, contact_table

# Every column an insert names.
INSERT_COLUMNS = tuple(c.name for c in contact_table.columns if c.name != "id")
# Rows whose email a live contact of the account already holds are skipped, as in
# `repository.insert_contact`; the caller finds out which.
ON_LIVE_EMAIL_CONFLICT = f" ON CONFLICT (account_id, email_key) WHERE {LIVE_EMAIL_KEY} DO NOTHING"
_SQL: dict[tuple[bool, bool], str] = {}


def postgresql_insert_sql(dialect: Any, *, tag_by_name: bool, returning: bool) -> str:
    """INSERT ... SELECT over `jsonb_array_elements($1)`, in the array's order.

    tag_by_name: the row holds the tag's name in place of `tag_id`, looked up by the statement
    (the import's rows). returning: RETURNING preview_id, id.
    """
    key = (tag_by_name, returning)
    sql = _SQL.get(key)
    if sql is not None:
        return sql
    values = []
    for n, name in enumerate(INSERT_COLUMNS):
        text = f"(src.value ->> {n})"
        column_type = contact_table.c[name].type
        if not isinstance(column_type, sa.String):
            text = str(sa.cast(sa.literal_column(text), column_type).compile(dialect=dialect))
        values.append(text)
    if tag_by_name:
        tag_at = INSERT_COLUMNS.index("tag_id")
        account = values[INSERT_COLUMNS.index("account_id")]
        values[tag_at] = (
            f"(SELECT tag.id FROM tag WHERE tag.account_id = {account}"  # noqa: S608
            f" AND tag.name = (src.value ->> {tag_at}))"
        )
    sql = (
        f"INSERT INTO contact ({', '.join(INSERT_COLUMNS)}) SELECT {', '.join(values)}"  # noqa: S608
        " FROM jsonb_array_elements(CAST($1 AS JSONB)) WITH ORDINALITY AS src(value, n)"
        f" ORDER BY src.n{ON_LIVE_EMAIL_CONFLICT}"
        + (" RETURNING preview_id, id" if returning else "")
    )  # only the table's own column names are spliced in; every value is bound
    _SQL[key] = sql
    return sql
