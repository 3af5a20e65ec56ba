"""Operational routes and the API's own description."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.storage import migrate

Client = AsyncTestClient[Litestar]


async def test_healthz_and_readyz_need_no_key(client: Client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_healthz_and_readyz_answer_head_as_get_without_a_body(client: Client) -> None:
    for path in ("/healthz", "/readyz"):
        response = await client.head(path)
        assert response.status_code == 200, path
        assert response.content == b"", path
        # The length GET's body has (it said 4, the length of `null`).
        got = await client.get(path)
        assert response.headers["content-length"] == str(len(got.content)), path


async def test_readyz_is_503_on_an_unmigrated_database(tmp_path: object) -> None:
    from contacts_api.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(f"sqlite:///{tmp_path}/empty.db"))
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/readyz")
        probe = await client.head("/readyz")
    assert response.status_code == 503
    assert "message" in response.json()
    assert probe.status_code == 503 and probe.content == b""


@pytest.mark.parametrize(
    ("revision", "status"),
    [("0007", 503), ("9999_a_newer_versions_migration", 200)],
    ids=["behind", "ahead"],
)
async def test_readyz_is_503_behind_the_schema_and_ready_ahead_of_it(
    database_url: str, revision: str, status: int
) -> None:
    """In a rolling upgrade `db upgrade` runs first, and the servers still on the old
    version keep serving: they answered 503 from that moment, and a load balancer took every
    one of them out at once. A database behind this version's schema is not ready."""
    from contacts_api.app import create_app
    from tests.conftest import make_settings

    engine = migrate.sync_engine(database_url)
    try:
        with engine.begin() as conn:
            head = migrate.current_revisions(conn)
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
        async with AsyncTestClient(app=create_app(make_settings(database_url))) as client:
            response = await client.get("/readyz")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": head.pop()})
        engine.dispose()
    assert response.status_code == status, response.text


async def test_unknown_route_is_a_json_404(client: Client) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"message": "Not found"}


async def test_openapi_document_describes_the_create_route(client: Client) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    operation = document["paths"]["/v1/contacts"]["post"]
    body_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = document["components"]["schemas"]
    body = schemas[body_ref.rsplit("/", 1)[1]]
    assert body["properties"]["firstName"]["anyOf"][0]["maxLength"] == 25
    assert "pattern" in body["properties"]["email"]["anyOf"][0]
    assert {"200", "201", "400", "401", "413", "415", "429", "503"} <= set(operation["responses"])
    limited = operation["responses"]["429"]["content"]["application/json"]["schema"]["$ref"]
    assert limited.endswith("RateLimitBody")
    error_ref = operation["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    assert error_ref.endswith("ValidationErrorBody")
    contact = schemas["ContactRead"]
    assert len(contact["properties"]) == 21
    assert document["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"


async def test_docs_page(client: Client) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "/openapi.json" in response.text
    # Every script and stylesheet from elsewhere is pinned to one release and its bytes checked
    # (Subresource Integrity): a key typed into the page's "Authorize" box is in its reach.
    tags = re.findall(r"<(?:script|link)\b[^>]*>", response.text)
    remote = [tag for tag in tags if re.search(r'(?:src|href)="https://', tag)]
    assert len(remote) == 2
    for tag in remote:
        assert re.search(r'integrity="sha384-[A-Za-z0-9+/]{64}"', tag), tag
        assert re.search(r"@\d+\.\d+\.\d+/", tag), tag
