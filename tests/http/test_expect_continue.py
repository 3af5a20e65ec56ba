"""The read timeout (http/server_protocol.py) does not count time the client spends waiting on us:
a client that sent `Expect: 100-continue` sends its body only once the app asks for it, and
the app asks only when it reads the body, after its key and budget checks.

Here those checks are slowed from outside: the rate limiter's Redis accepts connections and
never answers, so the first request waits the limiter's timeout (0.5 s) before it fails open,
while the server's read timeout is 0.2 s.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contacts_api.http.ratelimit.redis import TIMEOUT_SECONDS
from contacts_api.storage import migrate
from tests.factories import new_account_key
from tests.servers import serve

READ_TIMEOUT_S = 0.2


@pytest.fixture
def silent_redis() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung Redis)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_a_body_held_back_for_100_continue_is_waited_for(tmp_path: Path, silent_redis: int) -> None:
    assert TIMEOUT_SECONDS > 2 * READ_TIMEOUT_S  # else this test proves nothing
    url = f"sqlite:///{tmp_path / 's.db'}"
    migrate.upgrade(url)
    key = new_account_key(url)
    env = {
        "CONTACTS_API_DATABASE_URL": url,
        "CONTACTS_API_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT_S),
        "CONTACTS_API_REDIS_URL": f"redis://127.0.0.1:{silent_redis}/0",
    }
    body = json.dumps({"email": "expect-continue@example.com"}).encode()
    head = (
        b"POST /v1/contacts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + key.encode() + b"\r\nexpect: 100-continue\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with serve(env, log=tmp_path / "server.log") as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.settimeout(30)
            sock.sendall(head)
            sent = time.monotonic()
            assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
            assert time.monotonic() - sent > 2 * READ_TIMEOUT_S  # silent beyond the timeout
            sock.sendall(body)
            status = sock.recv(65536).partition(b"\r\n")[0]
    assert status == b"HTTP/1.1 201 Created"


@pytest.mark.parametrize(
    "expect", [b"100-continue", b"100-Continue", b"100-continue ", b"100-continue\t"]
)
def test_an_answer_before_the_body_was_asked_for_closes_the_connection(
    tmp_path: Path, expect: bytes
) -> None:
    """A wrong key is answered before the body is asked for. The answer said nothing of the
    connection: a client that then skipped the body and sent its next request had that read
    as the body, and waited 30 s (the read timeout) for an answer that never came. Whitespace
    after the value is the header's too (uvicorn compared the value whole: the same desync)."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    migrate.upgrade(url)
    head = (
        b"POST /v1/contacts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer iclosed_wrong\r\nexpect: " + expect + b"\r\n"
        b"content-length: 3000\r\n\r\n"
    )
    with serve({"CONTACTS_API_DATABASE_URL": url}, log=tmp_path / "server.log") as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.settimeout(10)
            sock.sendall(head)
            received = b""
            while chunk := sock.recv(65536):  # to the end: the server closes
                received += chunk
    status, _, rest = received.partition(b"\r\n")
    assert status == b"HTTP/1.1 401 Unauthorized"
    assert b"\r\nconnection: close\r\n" in rest.lower()


def test_a_request_owing_no_body_keeps_its_connection(tmp_path: Path) -> None:
    """Only a body still owed makes an early answer close: a GET sent with the header (some
    clients send it on every request) went on closing its connection."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    migrate.upgrade(url)
    request = b"GET /healthz HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n\r\n"
    with serve({"CONTACTS_API_DATABASE_URL": url}, log=tmp_path / "server.log") as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.settimeout(10)
            for _ in range(2):  # the second on the same connection
                sock.sendall(request)
                answer = sock.recv(65536)
                assert answer.startswith(b"HTTP/1.1 200 OK"), answer
                assert b"connection: close" not in answer.lower()


def test_an_http_1_0_request_gets_no_100_continue(tmp_path: Path) -> None:
    """RFC 9110 §10.1.1: an HTTP/1.0 request's `Expect: 100-continue` is ignored (a 1.0
    client cannot read the interim answer, which came as `HTTP/1.1 100 Continue`)."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    migrate.upgrade(url)
    key = new_account_key(url)
    body = b'{"email": "http.one.oh@example.com"}'
    head = (
        b"POST /v1/contacts HTTP/1.0\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + key.encode() + b"\r\nexpect: 100-continue\r\n"
        b"content-length: %d\r\n\r\n" % len(body)
    )
    with serve({"CONTACTS_API_DATABASE_URL": url}, log=tmp_path / "server.log") as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(head)
            sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                sock.recv(65536)  # nothing before the body
            sock.settimeout(10)
            sock.sendall(body)
            received = b""
            while chunk := sock.recv(65536):  # 1.0 without keep-alive: the server closes
                received += chunk
    assert received.startswith(b"HTTP/1.1 201 Created"), received
