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

import pytest

from tests.servers import keyed_server

OFFER = (  # as Java's HttpClient sends it
    b"connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\n"
    b"http2-settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, int], str]]:
    with keyed_server(tmp_path_factory.mktemp("upgrade")) as running:
        yield (running.host, running.port), running.key


class Responses:
    """The responses on a connection, one at a time, each cut at its content-length (two
    may arrive in one read)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"connection closed after {self.buffer!r}"
        self.buffer += chunk

    def next(self) -> tuple[bytes, dict[bytes, bytes], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status, *lines = head.split(b"\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines)}
        length = int(headers[b"content-length"])
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed(self) -> bool:
        """Whether the server closes the connection with nothing more sent."""
        return self.buffer == b"" and self.sock.recv(65536) == b""


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
        responses = Responses(sock)
        status, _, answer = responses.next()
        assert status == b"HTTP/1.1 201 Created", answer
        contact = json.loads(answer)["data"]["contact"]
        assert (contact["email"], contact["firstName"]) == ("h2c-length@example.com", "Jane")
        assert responses.next()[:1] == (b"HTTP/1.1 200 OK",)


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
        responses = Responses(sock)
        status, _, answer = responses.next()
        assert status == b"HTTP/1.1 201 Created", answer
        assert json.loads(answer)["data"]["contact"]["email"] == "h2c-chunked@example.com"
        # The connection goes on (the next request offers the upgrade again, as clients do).
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + OFFER + b"\r\n")
        assert responses.next()[:1] == (b"HTTP/1.1 200 OK",)


def test_a_broken_body_after_the_offer_is_a_json_400(server: tuple[tuple[str, int], str]) -> None:
    address, key = server
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(create_head(key, b"transfer-encoding: chunked\r\n") + b"zz\r\n{}\r\n")
        status, headers, answer = Responses(sock).next()
        assert status == b"HTTP/1.1 400 Bad Request"
        assert set(json.loads(answer)) == {"message"}
        assert headers[b"connection"] == b"close"


def test_a_request_closing_the_connection_after_an_offer_is_answered(
    server: tuple[tuple[str, int], str],
) -> None:
    """The parser made for the rest took bytes after a request that closes the connection as
    an error: the answer to that request was lost to a 400."""
    address, _ = server
    offered = b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + OFFER + b"\r\n"
    closing = b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(offered + closing + b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        responses = Responses(sock)
        assert [responses.next()[0] for _ in range(2)] == [b"HTTP/1.1 200 OK"] * 2
        assert responses.closed()


def test_an_offer_spread_over_two_connection_headers_is_ignored_too(
    server: tuple[tuple[str, int], str],
) -> None:
    """llhttp reads every Connection header, uvicorn's own check only the last."""
    address, key = server
    body = body_of("h2c-two-headers@example.com")
    head = create_head(key, b"content-length: %d\r\nconnection: keep-alive\r\n" % len(body))
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(head + body)
        status, _, answer = Responses(sock).next()
    assert status == b"HTTP/1.1 201 Created", answer


def test_a_request_after_a_connect_in_the_same_write_is_not_left_waiting(
    server: tuple[tuple[str, int], str],
) -> None:
    """llhttp stops at a CONNECT's head, and the bytes after it were dropped: the request
    pipelined behind it got no answer, its client waiting until the keep-alive ran out (75 s
    by default). The CONNECT is answered and the connection closed, so the client knows."""
    address, _ = server
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(
            b"CONNECT /healthz HTTP/1.1\r\nhost: x\r\n\r\nGET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
        )
        responses = Responses(sock)
        status, headers, _ = responses.next()
        assert status == b"HTTP/1.1 405 Method Not Allowed"
        assert headers[b"connection"] == b"close"
        assert responses.closed()


@pytest.mark.parametrize(
    "framing",
    [b"content-length: %d\r\n", b"transfer-encoding: chunked\r\n"],
    ids=["content-length", "chunked"],
)
def test_a_websocket_offer_with_a_body_is_ignored_and_served(
    server: tuple[tuple[str, int], str], framing: bytes
) -> None:
    """A websocket handshake is a GET without a body (RFC 6455). A POST offering one with a
    body was handed to the websocket library, which refused it and sent nothing: no answer,
    the connection held until the read timeout (30 s), the request after it lost."""
    address, key = server
    body = body_of(f"ws-offer-{framing[:7].decode()}@example.com")
    offer = (
        b"connection: upgrade\r\nupgrade: websocket\r\n"
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n"
    )
    head = (
        b"POST /v1/contacts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + key.encode() + b"\r\n" + offer
    )
    if b"%d" in framing:
        request = head + framing % len(body) + b"\r\n" + body
    else:
        request = head + framing + b"\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(request + b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        responses = Responses(sock)
        status, _, answer = responses.next()
        assert status == b"HTTP/1.1 201 Created", answer
        assert responses.next()[0] == b"HTTP/1.1 200 OK"


def test_a_websocket_handshake_is_still_refused(server: tuple[tuple[str, int], str]) -> None:
    """A GET offering a websocket is the handshake: taken, and refused by the app (403)."""
    address, _ = server
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(
            b"GET /v1/contacts HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\n"
            b"upgrade: websocket\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"sec-websocket-version: 13\r\n\r\n"
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 403")
