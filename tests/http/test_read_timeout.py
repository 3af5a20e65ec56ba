"""Clients that stop sending, or send a byte now and then, cannot hold a connection for good:
a head must arrive within the read timeout of its first byte, a body may pause no longer
than that between reads (http/server_protocol.py). Here the timeout is 2 s."""

from __future__ import annotations

import json
import re
import select
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest

from contacts_api.http.server_protocol import HEAD_TIMED_OUT
from tests.servers import KeyedServer, keyed_server, wait_until

TIMEOUT_S = 2
KEEP_ALIVE_S = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedServer]:
    settings = {
        "CONTACTS_API_READ_TIMEOUT_SECONDS": str(TIMEOUT_S),
        "CONTACTS_API_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE_S),
    }
    with keyed_server(tmp_path_factory.mktemp("read_timeout"), **settings) as running:
        yield running


def connect(server: KeyedServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port))
    sock.settimeout(30)  # a bound on the test, far above the server's timeout
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_connection_that_never_sends_is_closed(server: KeyedServer) -> None:
    with connect(server) as sock:
        assert read_all(sock) == b""


def test_a_head_sent_a_line_at_a_time_forever_gets_408(server: KeyedServer) -> None:
    """Each line well within the timeout: the head as a whole is what is timed."""
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        started = time.monotonic()
        while not select.select([sock], [], [], 0.3)[0]:
            sock.sendall(b"x-slow: 1\r\n")
            assert time.monotonic() - started < 30, "never cut off"
        answer = read_all(sock)
    status, _, body = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert json.loads(body.partition(b"\r\n\r\n")[2]) == {"message": HEAD_TIMED_OUT}


def create_head(server: KeyedServer, length: int) -> bytes:
    return (
        b"POST /v1/contacts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + server.key.encode() + b"\r\n"
        b"content-length: " + str(length).encode() + b"\r\n\r\n"
    )


def test_a_body_that_stops_part_way_closes_the_connection(server: KeyedServer) -> None:
    body = json.dumps({"email": "stopped@example.com"}).encode()
    with connect(server) as sock:
        sock.sendall(create_head(server, len(body)) + body[:10])
        assert read_all(sock) == b""  # closed, and no contact half made

    def events() -> list[tuple[str, str]]:
        lines = server.log.read_text().splitlines()
        return [(e["event"], e["level"]) for e in map(json.loads, lines) if "event" in e]

    gone = ("client disconnected before its body arrived", "info")
    wait_until(lambda: gone in events(), what="the app's line for the request")
    assert (f"Request body paused over {TIMEOUT_S} s: connection closed", "info") in events()
    assert not any(level == "error" for _, level in events())


def test_a_body_sent_slowly_with_short_pauses_is_served(server: KeyedServer) -> None:
    """Its pauses are short; the whole takes three times the timeout."""
    body = json.dumps({"email": "slow@example.com", "firstName": "Slow"}).encode()
    pieces = 15
    size = -(-len(body) // pieces)
    with connect(server) as sock:
        sock.sendall(create_head(server, len(body)))
        for start in range(0, len(body), size):
            time.sleep(TIMEOUT_S * 3 / pieces)
            sock.sendall(body[start : start + size])
        status = sock.recv(65536).partition(b"\r\n")[0]
    assert status == b"HTTP/1.1 201 Created"


def responses(sock: socket.socket) -> list[bytes]:
    """The status line of every response until the server closes the connection."""
    return re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", read_all(sock))


def test_a_blank_line_after_a_response_does_not_keep_the_connection_open(
    server: KeyedServer,
) -> None:
    """uvicorn sets its keep-alive timer aside for any bytes, and a blank line between
    requests starts none: the connection stayed open for good."""
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        sock.sendall(b"\r\n")
        assert read_all(sock) == b""


def test_the_rest_of_a_body_already_answered_does_not_keep_the_connection_open(
    server: KeyedServer,
) -> None:
    """A wrong key is answered before the body is read; the client sends the body anyway
    (uvicorn's keep-alive timer is set aside for it), then nothing."""
    body = b'{"email": "early@example.com"}' + b" " * 100_000
    head = create_head(server, len(body)).replace(server.key.encode(), b"iclosed_wrong")
    with connect(server) as sock:
        sock.sendall(head + body[:1000])
        assert sock.recv(65536).startswith(b"HTTP/1.1 401")
        sock.sendall(body[1000:])
        assert read_all(sock).count(b"HTTP/1.1") == 0


def test_the_rest_of_a_body_trickled_after_the_answer_holds_the_connection_no_longer(
    server: KeyedServer,
) -> None:
    """A body announced at a gigabyte and sent a byte at a time after its request was
    answered (a wrong key): each byte used to move the deadline on, holding the connection
    for good. The rest of a body answered already gets one read timeout from the answer."""
    head = create_head(server, 10**9).replace(server.key.encode(), b"iclosed_wrong")
    with connect(server) as sock:
        sock.sendall(head + b"{")
        assert sock.recv(65536).startswith(b"HTTP/1.1 401")
        answered = time.monotonic()
        closed = False
        while not closed and time.monotonic() - answered < TIMEOUT_S * 4:
            try:
                sock.sendall(b" ")
            except OSError:  # reset: the server closed while we sent
                closed = True
                break
            readable, _, _ = select.select([sock], [], [], TIMEOUT_S / 4)
            if readable:
                try:
                    closed = sock.recv(65536) == b""
                except OSError:
                    closed = True
        assert closed, "a trickled body kept the connection past the read timeout"
        assert time.monotonic() - answered < TIMEOUT_S + 1.5


def test_an_idle_connection_is_kept_for_the_keep_alive_time_then_closed(
    server: KeyedServer,
) -> None:
    """Between requests the keep-alive time applies, not the read timeout. uvicorn's 5 s
    closed connections a Node agent (also 5 s) was about to reuse: 17 of 100 creates sent
    after ~5 s idle got a reset, and a POST is not retried."""
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        time.sleep(TIMEOUT_S + 0.5)  # idle past the read timeout, within the keep-alive time
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        idle_from = time.monotonic()
        assert read_all(sock) == b""
        # Not uvicorn's 5 s: the setting reached it.
        assert KEEP_ALIVE_S - 0.5 < time.monotonic() - idle_from < KEEP_ALIVE_S + 1.5


def test_a_response_on_its_way_is_never_replaced_by_a_408(server: KeyedServer) -> None:
    """A create waits for the database (another program holds its write lock twice the
    timeout) while the next request's head, pipelined behind it, stops half way: the
    client gets the create's 201, then the 408."""
    body = json.dumps({"email": "in-flight@example.com"}).encode()
    holder = sqlite3.connect(server.database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(TIMEOUT_S * 2, holder.rollback)
    release.start()
    try:
        with connect(server) as sock:
            sock.sendall(create_head(server, len(body)) + body + b"GET /healthz HTTP/1.1\r\nho")
            assert responses(sock) == [b"HTTP/1.1 201 Created", b"HTTP/1.1 408 Request Timeout"]
    finally:
        release.cancel()
        release.join()
        if holder.in_transaction:
            holder.rollback()
        holder.close()


def test_a_client_that_reads_none_of_its_answers_is_dropped(server: KeyedServer) -> None:
    """Requests for `/openapi.json` (no key needed), pipelined, their answers never read:
    once the server's buffers are full it waits for the client, and counted that as waiting
    on itself, so the connection, its buffers and a suspended request were held for good.
    Now, with no answer read for the read timeout, the connection is dropped."""
    count = 300  # ~16 MB of answers: more than the kernel's buffers hold
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(30)
        sock.connect((server.host, server.port))
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nhost: x\r\n\r\n" * count)
        time.sleep(TIMEOUT_S + 2)  # reading nothing
        received = b""
        try:
            while chunk := sock.recv(1 << 20):
                received += chunk
        except ConnectionResetError:  # dropped: what was still on its way is lost
            pass
    assert received.count(b"HTTP/1.1 200 OK") < count
    wait_until(lambda: "read none of its answers" in server.log.read_text(), what="the log line")


def test_a_client_reading_its_answers_slowly_gets_them_all(server: KeyedServer) -> None:
    """The other side of it: a client reading steadily, but slower than its answers come (a
    bulk answer of ~1.8 MB over a slow link), stays above the mark at which the server
    resumes writing for longer than the read timeout. It reads, so it keeps its connection
    and gets every answer whole: dropped by the time it waited, it lost them mid-answer."""
    items = [
        {
            "email": f"slow.reader.{n}@example.com",
            "utm": "utm_source=" + "u" * 550,
            "referrerUrl": "https://example.com/" + "r" * 200,
        }
        for n in range(1000)
    ]
    body = json.dumps(items).encode()
    request = (
        b"POST /v1/contacts/bulk HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer %s\r\ncontent-length: %d\r\n\r\n%s"
        % (server.key.encode(), len(body), body)
    )
    count = 3  # more than the kernel's buffers hold: the rest waits in the server
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(30)
        sock.connect((server.host, server.port))
        sock.sendall(request * count)
        received = bytearray()
        while whole_answers(received) < count:
            chunk = sock.recv(16384)
            assert chunk, f"dropped after {len(received):,} bytes"
            received += chunk
            time.sleep(len(chunk) / 700_000)  # ~700 KB/s
    assert received.count(b"HTTP/1.1 200 OK") == count


def whole_answers(received: bytes) -> int:
    """How many whole responses (head and content-length's body) `received` holds."""
    count = position = 0
    while (end := received.find(b"\r\n\r\n", position)) != -1:
        length = re.search(rb"content-length: (\d+)", received[position:end], re.IGNORECASE)
        assert length is not None
        position = end + 4 + int(length.group(1))
        if position > len(received):
            break
        count += 1
    return count
