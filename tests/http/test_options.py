"""OPTIONS names every method a path serves, as its 405 does (Litestar's own OPTIONS handler
named only those of the first handler registered for the path)."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Litestar]

# HEAD wherever GET is (http/head_as_get.py).
SERVED = {
    "/v1/contacts": {"GET", "HEAD", "POST", "PUT", "DELETE"},
    "/v1/contacts/detail": {"GET", "HEAD"},
    "/v1/contacts/bulk": {"POST"},
    "/v1/contacts/notes": {"GET", "HEAD", "POST"},
    "/v1/webhooks": {"GET", "HEAD", "POST", "DELETE"},
    "/healthz": {"GET", "HEAD"},
}


def methods(allow: str) -> set[str]:
    return {m.strip() for m in allow.split(",")}


@pytest.mark.parametrize("path", SERVED)
async def test_options_names_every_method_the_path_serves(client: Client, path: str) -> None:
    options = await client.options(path)
    assert options.status_code == 204
    assert methods(options.headers["allow"]) == SERVED[path] | {"OPTIONS"}
    refused = await client.patch(path)
    assert refused.status_code == 405
    assert methods(refused.headers["allow"]) == methods(options.headers["allow"])


async def test_options_on_an_unknown_path_is_a_404(client: Client) -> None:
    response = await client.options("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"message": "Not found"}
