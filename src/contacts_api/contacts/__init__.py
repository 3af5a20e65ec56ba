"""Contacts, by layer and by job (each module's docstring says more).

- Create (POST /v1/contacts, reached through ../http/hot_routes.py): `router` →
  `create_batch` (group commit) → `bulk`, with `rules` (validation, a new contact's columns)
  and `service` (upsert by email; one create alone when a batch falls back) → `repository`;
  attribution in `tracking`.
- List, detail, update, delete: `manage_router` → `manage_service` → `manage_repository`;
  the two hot reads in `fast_read`; wire shapes in `schemas` and `manage_schemas`.
- Many at once: `bulk` (the upserter every path shares), `bulk_repository`, `json_insert`;
  POST /v1/contacts/bulk in `bulk_router`, `bulk_request`, `bulk_schemas`.
- Import and export files: `bulk_files`, `bulk_csv_layout`, `bulk_rows`, `bulk_dedupe`,
  `bulk_output`; the import's reader process `import_reader` (and `import_pipe`,
  `import_deferred`, `import_repository`). The jobs themselves: ../bulk_jobs.py,
  ../bulk_export.py.
- Counting and planning: `live_count`, `statistics`.
"""
