"""Operational routes: liveness, readiness and the API's own documentation. No key needed."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from litestar import MediaType, Request, Response, get

from contacts_api.http.openapi_docs import openapi_document
from contacts_api.http.state import app_db
from contacts_api.storage.migrate import schema_state


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    """The database answers, and its schema is this version's or a newer one's.

    Newer: in a rolling upgrade `db upgrade` runs once, before the servers are replaced, and
    the servers still running the old version go on serving. They answered 503 here from
    the moment of the upgrade, and a load balancer took every one of them out at once."""
    return await _readiness(request)


async def _readiness(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    db = app_db(request)
    try:
        async with db.read() as conn:
            result = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            current = {str(v) for v in result.scalars()}
    except Exception as exc:  # any failure to reach the database means "not ready"
        return Response({"message": f"database unreachable: {type(exc).__name__}"}, status_code=503)
    if schema_state(current) == "behind":
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


# Swagger UI from a CDN, pinned to one release and checked by Subresource Integrity: a key
# typed into "Authorize" is seen by this script, so the browser runs only these very bytes
# (the hashes are sha384 of the files in the npm package swagger-ui-dist 5.35.0, which the
# CDN serves as published). To move to another release, take its files' hashes the same way.
SWAGGER_CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0"
SWAGGER_CSS_SRI = "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I"
SWAGGER_JS_SRI = "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9"
SWAGGER_PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>contacts-api</title>
<link rel="stylesheet" href="{SWAGGER_CDN}/swagger-ui.css"
 integrity="{SWAGGER_CSS_SRI}" crossorigin="anonymous">
</head><body><div id="ui"></div>
<script src="{SWAGGER_CDN}/swagger-ui-bundle.js"
 integrity="{SWAGGER_JS_SRI}" crossorigin="anonymous"></script>
<script>SwaggerUIBundle({{url: "/openapi.json", dom_id: "#ui"}});</script>
</body></html>"""


@get("/docs", include_in_schema=False, media_type=MediaType.HTML)
async def docs() -> str:
    """Swagger UI over /openapi.json."""
    return SWAGGER_PAGE
