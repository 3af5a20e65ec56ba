"""What a read the parser refuses leaves behind, and what trailers may not do
(http/server_protocol.py), against the real server over raw sockets.

uvicorn starts a request's app as soon as its head is parsed, before the rest of the read;
when the rest is refused (a 400 and a closed connection), the request must not be carried
out behind the client's back: the client saw only the 400.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest

from tests.servers import KeyedServer, keyed_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedServer]:
    with keyed_server(tmp_path_factory.mktemp("refused_reads")) as running:
        yield running


def new_contact(server: KeyedServer, email: str) -> int:
    response = httpx.post(
        f"{server.base}/v1/contacts",
        json={"email": email},
        headers={"Authorization": f"Bearer {server.key}"},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["data"]["contact"]["id"])


def detail_status(server: KeyedServer, contact_id: int) -> int:
    response = httpx.get(
        f"{server.base}/v1/contacts/detail",
        params={"contactId": contact_id},
        headers={"Authorization": f"Bearer {server.key}"},
    )
    return response.status_code


def exchange(server: KeyedServer, data: bytes) -> bytes:
    """Send `data` in one write; everything the server sends until it closes."""
    with socket.create_connection((server.host, server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def delete_head(server: KeyedServer, contact_id: int, extra: bytes = b"") -> bytes:
    return (
        b"DELETE /v1/contacts?id=%d HTTP/1.1\r\nhost: x\r\nauthorization: Bearer %s\r\n%s\r\n"
        % (contact_id, server.key.encode(), extra)
    )


@pytest.mark.parametrize(
    ("extra_header", "after"),
    [
        # llhttp refuses this header only once the head is over: the app had started
        (b"transfer-encoding: identity\r\n", b""),
        # a valid request, then garbage in the same write
        (b"", b"G\x01T / HTTP/1.1\r\n\r\n"),
    ],
    ids=["transfer-encoding-identity", "garbage-after-it"],
)
def test_a_request_in_a_read_the_parser_refuses_is_not_carried_out(
    server: KeyedServer, extra_header: bytes, after: bytes
) -> None:
    contact_id = new_contact(server, f"refused.{len(extra_header)}@example.com")
    received = exchange(server, delete_head(server, contact_id, extra_header) + after)
    assert received.startswith(b"HTTP/1.1 400 Bad Request"), received
    assert received.count(b"HTTP/1.1 ") == 1
    assert detail_status(server, contact_id) == 200  # not deleted


def test_a_refused_read_leaves_other_connections_requests_alone(server: KeyedServer) -> None:
    """Another client's request whose app has not started yet, as this connection's read is
    refused, is answered: uvicorn's set of running requests is the worker's, and cancelling
    all those not yet started dropped other clients' requests (no answer, nothing done):
    most tries here, as both reads often come in one turn of the worker's loop."""
    address = (server.host, server.port)
    for _ in range(10):
        with (
            socket.create_connection(address) as other,
            socket.create_connection(address) as refused,
        ):
            other.settimeout(5)
            time.sleep(0.05)  # both connections accepted
            other.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            refused.sendall(b"G\x01T / HTTP/1.1\r\n\r\n")
            assert other.recv(65536).startswith(b"HTTP/1.1 200 OK")


def test_a_refused_read_after_an_answered_request_leaves_that_answer_standing(
    server: KeyedServer,
) -> None:
    """The other side of it: a DELETE answered in an earlier read stays done and answered."""
    contact_id = new_contact(server, "answered.before@example.com")
    with socket.create_connection((server.host, server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(delete_head(server, contact_id))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        sock.sendall(b"G\x01T / HTTP/1.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 Bad Request")
    assert detail_status(server, contact_id) == 404


def test_a_request_running_when_a_later_read_is_refused_is_answered_first(
    server: KeyedServer,
) -> None:
    """A DELETE whose app is running (it waits for SQLite's write lock, held here) when the
    next read is refused: its client gets the DELETE's own answer, then the 400, as the
    order of pipelined requests says. The 400 had gone out at once, read by the client as
    the DELETE's answer, and the connection closed, while the DELETE went on and was done."""
    contact_id = new_contact(server, "running.when.refused@example.com")
    blocker = sqlite3.connect(server.database, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with socket.create_connection((server.host, server.port)) as sock:
            sock.settimeout(15)
            sock.sendall(delete_head(server, contact_id))
            time.sleep(0.3)  # its app has started: it waits for the lock
            sock.sendall(b"G\x01T / HTTP/1.1\r\n\r\n")
            time.sleep(0.3)
            blocker.execute("ROLLBACK")
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
    finally:
        blocker.close()
    first, _, rest = received.partition(b"HTTP/1.1 400 Bad Request")
    assert first.startswith(b"HTTP/1.1 200 OK"), received
    assert b'"message"' in rest
    assert detail_status(server, contact_id) == 404  # deleted, as its 200 said


def test_a_running_request_whose_own_body_is_refused_answers_if_it_never_reads_it(
    server: KeyedServer,
) -> None:
    """A DELETE sent with a chunked body (its route reads none) is running when a read of
    that body is refused: it answers, then the 400. The 400 had gone out alone and the
    DELETE's answer was dropped, the contact deleted all the same."""
    contact_id = new_contact(server, "refused.in.own.body@example.com")
    chunked = delete_head(server, contact_id, b"transfer-encoding: chunked\r\n") + b"1\r\na\r\n"
    with closing(sqlite3.connect(server.database, isolation_level=None)) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        with socket.create_connection((server.host, server.port)) as sock:
            sock.settimeout(15)
            sock.sendall(chunked)
            time.sleep(0.3)  # its app has started: it waits for the lock
            sock.sendall(b"zz\r\n")  # not a chunk size
            time.sleep(0.3)
            blocker.execute("ROLLBACK")
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
    first, _, rest = received.partition(b"HTTP/1.1 400 Bad Request")
    assert first.startswith(b"HTTP/1.1 200 OK"), received
    assert b'"message"' in rest
    assert detail_status(server, contact_id) == 404


def test_a_running_request_reading_its_refused_body_sees_the_client_gone(
    server: KeyedServer,
) -> None:
    """A create whose chunked body is refused halfway is not carried out and gets no answer
    of its own (nothing 500s): the 400 comes at once, and the connection closes."""
    head = (
        b"POST /v1/contacts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer %s\r\ntransfer-encoding: chunked\r\n\r\n" % server.key.encode()
    )
    body = b'{"email": "half.a.body@example.com"}'
    with socket.create_connection((server.host, server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(body) - 1, body[:-1]))
        time.sleep(0.3)  # its app reads the body: the first chunk, then it waits
        sock.sendall(b"zz\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 400 Bad Request"), received
    assert received.count(b"HTTP/1.1 ") == 1
    listing = httpx.get(
        f"{server.base}/v1/contacts",
        params={"search": "half.a.body"},
        headers={"Authorization": f"Bearer {server.key}"},
    )
    assert listing.json()["data"]["count"] == 0
    assert "Internal Server Error" not in server.log.read_text()
    assert "without starting response" not in server.log.read_text()


def test_a_trailer_is_not_one_of_the_requests_headers(server: KeyedServer) -> None:
    """A header line after a chunked body sets nothing the app reads: `content-encoding:
    gzip` there had turned a malformed body's 400 into a 415."""
    head = (
        b"POST /v1/contacts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer %s\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        % server.key.encode()
    )
    received = exchange(server, head + b"3\r\nabc\r\n0\r\ncontent-encoding: gzip\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400 Bad Request"), received
    body = json.loads(received.partition(b"\r\n\r\n")[2])
    assert body["message"]["details"]["formErrors"] == ["Malformed JSON in request body"]


@pytest.mark.parametrize(
    "host_lines",
    [b"host: a b\r\n", b"", b"host: a\r\nhost: b\r\n", b"host: x/y\r\n"],
    ids=["not-a-host", "none", "two", "a-path"],
)
@pytest.mark.parametrize("route", [b"POST /v1/contacts", b"GET /healthz"])
def test_a_request_without_one_valid_host_is_a_400(
    server: KeyedServer, host_lines: bytes, route: bytes
) -> None:
    """RFC 9112 §3.2: no `Host` in HTTP/1.1, two, or one that is no host → 400. Litestar's
    router refused `host: a b` on the routes it serves; the hot routes, answered before it,
    created the contact anyway, and none checked for a missing or a second Host."""
    email = f"host.{len(host_lines)}.{route[:3].decode()}@example.com".lower()
    body = json.dumps({"email": email}).encode() if route.startswith(b"POST") else b""
    received = exchange(
        server,
        route + b" HTTP/1.1\r\n" + host_lines + b"authorization: Bearer %s\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (server.key.encode(), len(body), body),
    )
    assert received.startswith(b"HTTP/1.1 400 Bad Request"), received
    assert json.loads(received.partition(b"\r\n\r\n")[2]) == {"message": "Invalid host header"}
    listing = httpx.get(
        f"{server.base}/v1/contacts",
        params={"search": email},
        headers={"Authorization": f"Bearer {server.key}"},
    )
    assert listing.json()["data"]["count"] == 0


@pytest.mark.parametrize(
    ("version", "host_lines"),
    [
        (b"1.1", b"host: example.com:8080\r\n"),
        (b"1.1", b"host: [::1]:4000\r\n"),
        (b"1.1", b"host: 127.0.0.1\r\n"),
        (b"1.1", b"host: example.com \t\r\n"),  # whitespace after a value is not part of it
        (b"1.0", b""),  # HTTP/1.0 needs none
    ],
)
def test_a_request_with_one_valid_host_or_none_in_http_1_0_is_served(
    server: KeyedServer, version: bytes, host_lines: bytes
) -> None:
    received = exchange(
        server,
        b"GET /healthz HTTP/" + version + b"\r\n" + host_lines + b"connection: close\r\n\r\n",
    )
    assert received.startswith(b"HTTP/1.1 200 OK"), received
