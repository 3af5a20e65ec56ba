"""An `Upgrade` offer the server does not take is ignored: the request is served as HTTP/1.1,
body and all (http/server_protocol.py). Java's HttpClient and Spring's RestClient offer `h2c`
on every http:// request by default; each create they sent was answered 400 "Malformed JSON"
(the app ran with an empty body), and a request after it on the connection got no answer.

Against the real server (`contacts-api serve`), over raw sockets: it lives below the app.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contacts_api.storage import migrate
from tests.factories import new_account_key
from tests.http.test_head_limit import read_response
from tests.servers import serve

OFFER = (  # as Java's HttpClient sends it
    b"connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\n"
    b"http2-settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, int], str]]:
    folder: Path = tmp_path_factory.mktemp("upgrade")
    url = f"sqlite:///{folder / 's.db'}"
    migrate.upgrade(url)
    key = new_account_key(url)
    with serve({"CONTACTS_API_DATABASE_URL": url}, log=folder / "server.log") as base:
        host, port = base.removeprefix("http://").split(":")
        yield (host, int(port)), key


def create_head(key: str, framing: bytes) -> bytes:
    return (
        b"POST /v1/contacts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + key.encode() + b"\r\n" + OFFER + framing + b"\r\n"
    )


def body_of(email: str) -> bytes:
    return json.dumps({"email": email, "firstName": "Jane"}).encode()


def test_a_create_offering_h2c_is_created_and_the_next_request_answered(
    server: tuple[tuple[str, int], str],
) -> None:
    address, key = server
    body = body_of("h2c-length@example.com")
    request = create_head(key, b"content-length: %d\r\n" % len(body)) + body
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request + b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")  # one write
        status, _, answer = read_response(sock)
        assert status == b"HTTP/1.1 201 Created", answer
        contact = json.loads(answer)["data"]["contact"]
        assert (contact["email"], contact["firstName"]) == ("h2c-length@example.com", "Jane")
        assert read_response(sock)[:1] == (b"HTTP/1.1 200 OK",)


def test_a_chunked_body_after_the_offer_in_later_writes_is_read(
    server: tuple[tuple[str, int], str],
) -> None:
    address, key = server
    body = body_of("h2c-chunked@example.com")
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(create_head(key, b"transfer-encoding: chunked\r\n"))
        time.sleep(0.1)  # the head is read alone: the parser stops at its end
        sock.sendall(b"%x\r\n%s\r\n" % (len(body), body))
        time.sleep(0.1)
        sock.sendall(b"0\r\n\r\n")
        status, _, answer = read_response(sock)
        assert status == b"HTTP/1.1 201 Created", answer
        assert json.loads(answer)["data"]["contact"]["email"] == "h2c-chunked@example.com"
        # The connection goes on (the next request offers the upgrade again, as clients do).
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + OFFER + b"\r\n")
        assert read_response(sock)[:1] == (b"HTTP/1.1 200 OK",)


def test_a_broken_body_after_the_offer_is_a_json_400(server: tuple[tuple[str, int], str]) -> None:
    address, key = server
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(create_head(key, b"transfer-encoding: chunked\r\n") + b"zz\r\n{}\r\n")
        status, headers, answer = read_response(sock)
        assert status == b"HTTP/1.1 400 Bad Request"
        assert set(json.loads(answer)) == {"message"}
        assert headers[b"connection"] == b"close"
