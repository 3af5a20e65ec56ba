"""A chunked upload (no Content-Length) through the real server: uvicorn hands the body over
in several messages, and only the bytes received can tell its size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.factories import sqlite_file_with_account
from tests.servers import serve

HEAD, TAIL = b'{"email": "big@b.co", "pad": "', b'"}'
QUARTER = b"x" * (256 * 1024)


def upload(chunks: list[bytes]) -> Iterator[bytes]:
    yield from chunks


async def test_a_chunked_body_is_limited_by_the_bytes_received(tmp_path: Path) -> None:
    url, account = await sqlite_file_with_account(tmp_path / "c.db")
    headers = {**account.headers, "Content-Type": "application/json"}
    just_under = b"x" * (1024 * 1024 - len(HEAD) - len(TAIL) - 3 * len(QUARTER))
    with (
        serve({"CONTACTS_API_DATABASE_URL": url}, log=tmp_path / "server.log") as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        over = client.post(
            "/v1/contacts", content=upload([HEAD, *[QUARTER] * 4, TAIL]), headers=headers
        )
        under = client.post(
            "/v1/contacts",
            content=upload([HEAD, *[QUARTER] * 3, just_under, TAIL]),
            headers=headers,
        )
    assert "content-length" not in over.request.headers
    assert over.request.headers["transfer-encoding"] == "chunked"
    assert over.status_code == 413
    assert set(over.json()) == {"message"}
    assert under.status_code == 201, under.text
    assert "Traceback" not in (tmp_path / "server.log").read_text()
