"""A request head over 32 KiB is answered 431 and never read whole (http/server_protocol.py).

Against the real server (`contacts-api serve`), over raw sockets: the limit lives in the
HTTP protocol, below the app.
"""

from __future__ import annotations

import json
import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contacts_api.http.server_protocol import HEAD_TOO_LARGE, MAX_HEAD_BYTES
from tests.servers import serve

REQUEST_LINE = b"GET /healthz HTTP/1.1\r\n"


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    folder: Path = tmp_path_factory.mktemp("head_limit")
    env = {"CONTACTS_API_DATABASE_URL": f"sqlite:///{folder / 's.db'}"}
    with serve(env, log=folder / "server.log") as base:
        host, port = base.removeprefix("http://").split(":")
        yield host, int(port)


def head_of(size: int) -> bytes:
    """A complete GET /healthz head of exactly `size` bytes, as the server counts it: the
    URL, and each header's name, value and four bytes of separators."""
    fixed = len(b"/healthz") + len(b"host") + len(b"x") + 4 + len(b"x-pad") + 4
    return REQUEST_LINE + b"host: x\r\nx-pad: " + b"a" * (size - fixed) + b"\r\n\r\n"


def read_response(sock: socket.socket) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """Status line, headers and body of one response (by its content-length)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines)}
    while len(body) < int(headers[b"content-length"]):
        body += sock.recv(65536)
    return status, headers, body


def send_in_pieces(sock: socket.socket, data: bytes, size: int) -> None:
    """`data` as 8 bytes, pieces of `size`, then its last 2 bytes: while the head is under
    way, every read between the first and the last counts raw (the method, the version and
    separators included, which the exact count leaves out)."""
    sock.sendall(data[:8])
    time.sleep(0.1)  # read alone
    for start in range(8, len(data) - 2, size):
        sock.sendall(data[start : min(start + size, len(data) - 2)])
        time.sleep(0.001)
    time.sleep(0.1)
    sock.sendall(data[-2:])


@pytest.mark.parametrize("piece", [None, 1024], ids=["three-writes", "1KiB-writes"])
def test_a_head_at_the_limit_is_served_and_one_byte_more_is_431(
    address: tuple[str, int], piece: int | None
) -> None:
    with socket.create_connection(address) as sock:
        send_in_pieces(sock, head_of(MAX_HEAD_BYTES), piece or MAX_HEAD_BYTES * 2)
        status, _, body = read_response(sock)
        assert status.startswith(b"HTTP/1.1 200"), body
    with socket.create_connection(address) as sock:
        send_in_pieces(sock, head_of(MAX_HEAD_BYTES + 1), piece or MAX_HEAD_BYTES * 2)
        status, headers, body = read_response(sock)
        assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
        assert headers[b"connection"] == b"close"
        assert headers[b"x-content-type-options"] == b"nosniff"  # as every other answer
        assert headers[b"cache-control"] == b"no-store"
        assert json.loads(body) == {"message": HEAD_TOO_LARGE}
        assert sock.recv(1) == b""  # closed


def test_the_limit_is_per_request_on_a_kept_alive_connection(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        for _ in range(3):  # 3 x 20 KiB on one connection
            sock.sendall(head_of(20 * 1024))
            status, _, _ = read_response(sock)
            assert status.startswith(b"HTTP/1.1 200")


def test_a_header_that_never_ends_is_cut_off_early(address: tuple[str, int]) -> None:
    """A header dribbled in 4 KiB writes is refused once the head passes the limit, long
    before the sender stops: the server does not keep what is still arriving."""
    sent = 0
    with socket.create_connection(address) as sock:
        sock.sendall(REQUEST_LINE + b"host: x\r\nx-pad: ")
        while sent < 4 * 1024 * 1024:
            readable, _, _ = select.select([sock], [], [], 0.01)
            if readable:
                break
            sock.sendall(b"a" * 4096)
            sent += 4096
        else:
            pytest.fail("4 MiB of one header were taken without an answer")
        status, _, body = read_response(sock)
    assert status.startswith(b"HTTP/1.1 431"), body
    assert sent < 1024 * 1024, sent


def test_trailers_that_never_end_close_the_connection(address: tuple[str, int]) -> None:
    """Header lines after a chunked body (trailers) are bounded as a head is: the server
    closes the connection long before the sender stops."""
    sent = 0
    with socket.create_connection(address) as sock:
        sock.sendall(
            b"POST /healthz HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\nx-trailer: "
        )
        received = b""
        try:
            while sent < 4 * 1024 * 1024:
                readable, _, _ = select.select([sock], [], [], 0.01)
                if readable:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break  # closed
                    received += chunk  # the answer to the request itself (405)
                sock.sendall(b"a" * 4096)
                sent += 4096
            else:
                pytest.fail("4 MiB of one trailer were taken without closing")
        except ConnectionError:
            pass  # reset while sending: closed too
    assert sent < 1024 * 1024, sent


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz?limit=\xd9\xa3 HTTP/1.1\r\nhost: x\r\n\r\n",  # a raw non-ASCII byte
        b"G\x01T /healthz HTTP/1.1\r\nhost: x\r\n\r\n",  # a method that is none
        b"POST /v1/contacts HTTP/1.1\r\nhost: x\r\ncontent-length: ten\r\n\r\n",
    ],
    ids=["byte-in-url", "method", "content-length"],
)
def test_a_request_the_parser_refuses_is_a_json_400(
    address: tuple[str, int], request_bytes: bytes
) -> None:
    """uvicorn answered these in plain text; the API answers every error as JSON."""
    with socket.create_connection(address) as sock:
        sock.settimeout(30)
        sock.sendall(request_bytes)
        status, headers, body = read_response(sock)
    assert status == b"HTTP/1.1 400 Bad Request"
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert json.loads(body) == {"message": "Invalid HTTP request received."}


def test_a_run_of_pipelined_requests_read_across_heads_is_served_whole(
    address: tuple[str, int],
) -> None:
    """A read that starts and ends part way through heads, with many whole requests between:
    it was counted whole against the head being read, and 1,300 pipelined GETs (44 KB in one
    read) got a 431 after the first answer."""
    request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
    count = 1300
    with socket.create_connection(address) as sock:
        sock.settimeout(30)
        sock.sendall(request + b"GET /hea")
        time.sleep(0.2)  # read alone
        sock.sendall(b"lthz HTTP/1.1\r\nhost: x\r\n\r\n" + request * count + b"GET /hea")
        time.sleep(0.2)
        sock.sendall(b"lthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    statuses = re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", received)
    assert statuses == [b"HTTP/1.1 200 OK"] * (count + 3)
