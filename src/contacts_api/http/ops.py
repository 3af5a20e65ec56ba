"""Operational routes: liveness, readiness and the API's own documentation. No key needed."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from litestar import MediaType, Request, Response, get

from contacts_api.http.openapi_docs import openapi_document
from contacts_api.http.state import app_db
from contacts_api.storage.migrate import head_revisions


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    """The database answers and carries the newest schema."""
    db = app_db(request)
    try:
        async with db.read() as conn:
            result = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            current = {str(v) for v in result.scalars()}
    except Exception as exc:  # any failure to reach the database means "not ready"
        return Response({"message": f"database unreachable: {type(exc).__name__}"}, status_code=503)
    if current != head_revisions():
        return Response({"message": "database schema is not up to date"}, status_code=503)
    return Response({"status": "ready"})


@get("/openapi.json", include_in_schema=False, media_type=MediaType.JSON)
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this server."""
    state = request.app.state
    if getattr(state, "openapi_document", None) is None:
        state.openapi_document = openapi_document(request.app)
    document: dict[str, Any] = state.openapi_document
    return document


SWAGGER_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>contacts-api</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head><body><div id="ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>"""


@get("/docs", include_in_schema=False, media_type=MediaType.HTML)
async def docs() -> str:
    """Swagger UI over /openapi.json."""
    return SWAGGER_PAGE
