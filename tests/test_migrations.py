"""The migrations and the models describe the same schema, on both databases."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from contacts_api.contacts.json_insert import INSERT_COLUMNS
from contacts_api.storage import migrate
from contacts_api.storage.models import Base


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = migrate.sync_engine(database_url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            revisions = migrate.current_revisions(conn)
    finally:
        engine.dispose()
    if engine.dialect.name == "postgresql":
        # Migration 0002 builds the listing indexes' nullable text columns NULLS FIRST on
        # PostgreSQL (matching SQLite's NULL ordering), which the models cannot express.
        differences = [
            d
            for d in differences
            if not (
                d[0] in ("add_index", "remove_index") and d[1].name.startswith("ix_contact_live_")
            )
        ]
    assert differences == []
    assert revisions == migrate.head_revisions()


def test_no_inserted_contact_column_has_a_database_default(database_url: str) -> None:
    """The SQLite import leaves out the columns empty in a whole batch and counts on them being
    NULL (contacts/import_repository.py): a default would silently change imported contacts."""
    engine = migrate.sync_engine(database_url)
    try:
        with engine.connect() as conn:
            columns = sa.inspect(conn).get_columns("contact")
    finally:
        engine.dispose()
    defaults = {c["name"]: c.get("default") for c in columns if c["name"] in INSERT_COLUMNS}
    assert set(defaults) == set(INSERT_COLUMNS)
    assert {name: default for name, default in defaults.items() if default is not None} == {}
