"""The migrations and the models describe the same schema, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

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
