"""Each response leaves the server in one write (http/one_write.py)."""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from contacts_api.http.one_write import FLUSH_AT, OneWriteTransport
from tests.servers import serve


class RecordingTransport(asyncio.Transport):
    """Stands in for asyncio's socket transport: records what reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 4000) if name == "peername" else default


async def next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_the_writes_of_one_turn_reach_the_transport_as_one() -> None:
    real = RecordingTransport()
    transport = OneWriteTransport(real, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert real.writes == []
    await next_turn()
    assert real.writes == [b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}"]
    transport.write(b"next")
    await next_turn()
    assert real.writes[1:] == [b"next"]


async def test_a_large_write_goes_out_at_once_for_flow_control() -> None:
    real = RecordingTransport()
    transport = OneWriteTransport(real, asyncio.get_running_loop())
    transport.write(b"head\r\n\r\n")
    transport.write(b"x" * FLUSH_AT)
    assert real.writes == [b"head\r\n\r\n" + b"x" * FLUSH_AT]
    await next_turn()
    assert len(real.writes) == 1


async def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    real = RecordingTransport()
    transport = OneWriteTransport(real, asyncio.get_running_loop())
    transport.write(b"last response")
    transport.close()
    assert real.writes == [b"last response"]
    assert real.closed

    other = RecordingTransport()
    transport = OneWriteTransport(other, asyncio.get_running_loop())
    transport.write(b"never sent")
    transport.abort()
    await next_turn()
    assert other.writes == []
    assert other.aborted


async def test_nothing_is_written_to_a_transport_already_closing() -> None:
    real = RecordingTransport()
    transport = OneWriteTransport(real, asyncio.get_running_loop())
    transport.write(b"for a client that left")
    real.closed = True  # the peer went away before the end of the turn
    await next_turn()
    assert real.writes == []


async def test_everything_else_is_the_real_transport() -> None:
    real = RecordingTransport()
    transport = OneWriteTransport(real, asyncio.get_running_loop())
    assert transport.get_extra_info("peername") == ("127.0.0.1", 4000)
    assert transport.is_closing() is False


def segments_received(sock: socket.socket) -> int:
    """tcpi_data_segs_in of Linux's struct tcp_info (at byte 152 since Linux 4.6): segments
    carrying data, so not the bare ACKs a response slower than the delayed-ACK timer (~40 ms,
    on a loaded machine) brings besides."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < 156:
        pytest.skip("this kernel's tcp_info has no tcpi_data_segs_in")
    return int(struct.unpack_from("I", info, 152)[0])


def get_healthz(sock: socket.socket) -> None:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)


@pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's TCP_INFO")
def test_the_real_server_answers_each_request_in_one_tcp_segment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with (
        serve({"CONTACTS_API_DATABASE_URL": url}, log=tmp_path / "server.log") as base,
        socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1]))) as sock,
    ):
        for _ in range(20):
            get_healthz(sock)
        before = segments_received(sock)
        for _ in range(50):
            get_healthz(sock)
        segments = segments_received(sock) - before
    # Two writes a response (uvicorn's own protocol) arrive as 100 segments or more.
    assert 50 <= segments < 75, f"{segments} segments for 50 responses"
