"""The server's HTTP protocol: one write per response, and a bound on a request's head.

uvicorn's httptools protocol takes a request line and headers of any size: a 25 MiB header
was read into memory and handed to the app (it answered 200). A head (request line and
headers) of more than MAX_HEAD_BYTES now gets `431 Request Header Fields Too Large`, in the
API's `{"message": ...}` shape, and the connection is closed. Nginx's default buffers hold
4 x 8 KiB; browsers and HTTP clients send far less.

Two counts of the head, either of which refuses:
- the head as parsed, exactly, once it is complete: the URL, and each header's name and
  value plus four bytes of separators;
- while it is still arriving, httptools keeps its bytes and tells us nothing, so every read
  that arrives while the head is under way, and leaves it still under way, is counted
  whole, against the limit plus RAW_SLACK (the raw bytes hold the method, the version and
  separators the exact count leaves out, so a head at the limit passes however it
  arrives): memory stays within that plus one read.
Counting each header as it completes cost a Python call per header on every request.

Header lines can also come after a chunked body (trailers), which httptools keeps as it keeps
a head: reads that arrive after the head and give no body are counted the same way, and past
the limit the connection is closed (a response may already be on its way, so none is sent).
A 192 MiB trailer line had taken a worker from 102 to 447 MB.
"""

from __future__ import annotations

import asyncio

import msgspec

from contacts_api.http.envelope import MessageBody
from contacts_api.http.one_write import OneWriteHttpToolsProtocol

MAX_HEAD_BYTES = 32 * 1024
RAW_SLACK = 8 * 1024
HEAD_TOO_LARGE = f"Request headers too large (limit {MAX_HEAD_BYTES >> 10} KiB)"
_BODY = msgspec.json.encode(MessageBody(HEAD_TOO_LARGE))
_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
    b"connection: close\r\n"
    b"\r\n" + _BODY
)


class HeadTooLarge(Exception):
    """Raised inside httptools' callbacks; the parser stops and uvicorn answers (see below)."""


class ServerHttpProtocol(OneWriteHttpToolsProtocol):
    """uvicorn's httptools protocol, one write per response, heads of at most 32 KiB."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._in_head = False
        self._in_message = False
        self._head_reads = 0  # reads that came while the head was under way and left it so
        self._quiet_reads = 0  # reads after the head that gave no body (trailers)
        self._gave_body = False
        self._head_refused = False
        super().connection_made(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = self._in_message = True
        self._head_reads = self._quiet_reads = 0

    def on_body(self, body: bytes) -> None:
        self._gave_body = True
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        super().on_message_complete()

    def on_headers_complete(self) -> None:
        self._in_head = False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > MAX_HEAD_BYTES:
            self._head_refused = True
            raise HeadTooLarge
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._head_refused:
            return
        under_way = self._in_head
        past_head = self._in_message and not under_way
        self._gave_body = False
        super().data_received(data)
        if self._head_refused:
            return
        if under_way and self._in_head:
            self._head_reads += len(data)
            if self._head_reads > MAX_HEAD_BYTES + RAW_SLACK:
                self._head_refused = True
                self.send_400_response(HEAD_TOO_LARGE)
        elif self._gave_body:
            self._quiet_reads = 0
        elif past_head and self._in_message:
            self._quiet_reads += len(data)
            if self._quiet_reads > MAX_HEAD_BYTES:
                self._head_refused = True
                self.logger.warning(
                    "Request trailers over %d bytes: connection closed", MAX_HEAD_BYTES
                )
                self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request the parser refused: ours is a 431 when the head
        was too large (uvicorn has logged "Invalid HTTP request received." by then)."""
        if not self._head_refused:
            super().send_400_response(msg)
            return
        self.transport.write(_RESPONSE)
        self.transport.close()
