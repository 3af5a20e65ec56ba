"""The server's HTTP protocol: one write per response, a bound on a request's head, and on
how long a client may take to send one.

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

Time (`read_timeout`, CONTACTS_API_READ_TIMEOUT_SECONDS): uvicorn waits for a request's head
and body as long as the client likes, so connections that send a byte now and then (or
nothing at all) each held a worker's file descriptor for good: a few thousand such clients,
and nobody else could connect. Now:
- a new connection must start a request within `read_timeout`, else it is closed;
- a head must be complete within `read_timeout` of its first byte, else `408` and the
  connection is closed;
- a body may pause at most that long between reads, else the connection is closed (the app
  sees a client gone: 499);
- between requests, uvicorn's keep-alive timeout applies (CONTACTS_API_KEEP_ALIVE_SECONDS);
  bytes that start no request (a blank line, the rest of a body already answered) set that
  aside in uvicorn, so they start our wait instead.
A client that reads nothing of its answers for `read_timeout` once our buffers are full is
dropped (http/write_stall.py): that wait is the client's, not ours. Header values lose the
whitespace after them (RFC 9110 §5.5), as they lose that before them in llhttp.
Time the client spends waiting on us does not count: while we stopped reading (the app is
behind: flow control), while an earlier response is still on its way, and while the app has
not yet asked for a body that `Expect: 100-continue` holds back.

One timer per connection, and a deadline moved by a plain assignment: a request moves it
three times, and re-scheduling a timer each time cost ~5 us a request.

An `Upgrade` offer the server does not take (any but a websocket's, which uvicorn takes and
the app refuses: `h2c`, which Java's HttpClient and Spring's RestClient offer on every
http:// request by default) is ignored, as RFC 9110 §7.8 allows: llhttp stops
at the end of such a head as if the rest were another protocol, and uvicorn then ran the app
with an empty body (a create got 400 "Malformed JSON"; uvicorn#2722, httptools#124, open).
The request is fed again, without the offer, to a fresh parser that goes on with the body and
with any requests after it. A websocket offer is taken only as RFC 6455's handshake, a GET
without a body: a POST offering one, with a body, went to the websocket library, which refused
it and sent nothing (the client waited until the read timeout). A `CONNECT /path`, where
llhttp also stops, is answered (405) and its connection closed: a request pipelined behind it
in the same read was dropped, its client waiting until the keep-alive ran out.

A request that sent `Expect: 100-continue` and is answered before its body was asked for (a
wrong key: 401, a body announced too large: 413), while that body is still owed, is answered
with `connection: close`, as RFC 9110 §10.1.1 asks a server to say: a client that then
skipped the body and sent its next request on the connection had it read as the body, and
waited 30 s for an answer. The header is recognized with whitespace after its value, which
uvicorn missed (`100-continue ` went on keeping the connection: the same desync). In an
HTTP/1.0 request the expectation is ignored, as RFC 9110 §10.1.1 says (it got a 100).

A request answered without `Expect` while its body is still owed keeps its connection, and
the rest of the body is read and dropped, if it all comes within `read_timeout` of the last
read before the answer; else the connection closes then. A body announced as 2^64-1 bytes and
sent a byte at a time had held the connection for good, each read moving the deadline on. No
bound on its bytes: a close while the client still sends can reset the connection before the
client has read the answer (a 401, a 413) that explains why, the reason servers linger
(nginx's lingering_time).

A read the parser refuses (a 400, or a 431) also cancels the requests whose app has not
started running yet (those of that same read): uvicorn starts a request's app as its head is
parsed, and a `DELETE` followed in the same read by a malformed request (or carrying a header
llhttp refuses only after the head, `Transfer-Encoding: identity`) was carried out while its
client got only the 400, with the connection closed. A request whose app was already running
(an earlier read) is answered first, and the refusal waits for that answer: sent at once, it
was read by a pipelining client as that request's answer, and the request was still done.
When the refused read was in that request's own body, an app reading the body finds the
client gone; one that reads none (a DELETE sent with a body) answers as before.

Header lines after a chunked body (trailers) are not added to the request's headers, which
the app has already been given: a trailer `content-encoding: gzip` had turned a body's 400
into a 415.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import httptools
from litestar._asgi.utils import is_valid_host  # the very check Litestar's router makes
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from contacts_api.http.refusals import closing_response, settle_requests
from contacts_api.http.write_stall import WriteStallProtocol

MAX_HEAD_BYTES = 32 * 1024
RAW_SLACK = 8 * 1024
HEAD_TOO_LARGE = f"Request headers too large (limit {MAX_HEAD_BYTES >> 10} KiB)"
HEAD_TIMED_OUT = "Request timeout: the request's headers did not arrive in time"
BAD_HOST = "Invalid host header"


_RESPONSE = closing_response(b"431 Request Header Fields Too Large", HEAD_TOO_LARGE)
_TIMEOUT_RESPONSE = closing_response(b"408 Request Timeout", HEAD_TIMED_OUT)


class _ContinueOrCloseCycle(RequestResponseCycle):
    """A request held back by `Expect: 100-continue`: answered before the app asked for its
    body, while the body is still owed, the connection closes (see the module's docstring).
    A request with no body, or whose client sent it anyway, keeps its connection."""

    async def send(self, message: Any) -> None:
        if not self.response_started and self.waiting_for_100_continue and self.more_body:
            self.keep_alive = False  # uvicorn adds `connection: close`, and closes after
        await super().send(message)


class BadHost(Exception):
    """No `Host`, two, or one that is no host name (RFC 9112 §3.2: a 400), raised as
    HeadTooLarge is. Litestar's router checked the value, on the routes it serves; the hot
    routes (http/hot_routes.py) answer before it, and took `host: a b`, none, or two."""


class HeadTooLarge(Exception):
    """Raised inside httptools' callbacks; the parser stops and uvicorn answers (see below)."""


class ServerHttpProtocol(WriteStallProtocol):
    """uvicorn's httptools protocol, one write per response, heads of at most 32 KiB, and
    clients that must keep sending (see above), and reading (http/write_stall.py)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._in_head = False
        self._in_message = False
        self._head_reads = 0  # reads that came while the head was under way and left it so
        self._quiet_reads = 0  # reads after the head that gave no body (trailers)
        self._gave_body = False
        self._began = False  # whether a request began during the read being parsed
        self._head_refused = False
        self._refusal: bytes | None = None  # a 400 or 431 that waits for an earlier answer
        self._refused_host = False
        self._read = b""  # the bytes being parsed (an ignored Upgrade parses their rest again)
        self._offer_ignored: bytes | None = None  # that request's head, without the offer
        self._replay: bytes | None = None
        self._deadline: float | None = None  # by when the client must send (loop.time())
        self._read_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._expect_more()  # the first request

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = self._in_message = self._began = True
        self._head_reads = self._quiet_reads = 0
        self._expect_more()  # the whole head, from its first byte

    def on_header(self, name: bytes, value: bytes) -> None:
        """uvicorn's, with three changes (see the module's docstring): whitespace after a
        value is not part of it (RFC 9110 §5.5; llhttp drops only the whitespace before it),
        so `Expect: 100-continue ` is recognized and `Host: example.com ` is a host; and a
        trailer is no header."""
        if not self._in_head:
            return  # a trailer (its bytes are counted: data_received)
        name = name.lower()
        value = value.rstrip(b" \t")
        if (
            name == b"expect"
            and value.lower() == b"100-continue"
            and self.parser.get_http_version() != "1.0"  # RFC 9110 §10.1.1: ignored in 1.0
        ):
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._gave_body = True
        if not self._answered():  # (answered: the rest gets no more time)
            self._expect_more()  # the next read of the body
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._offer_ignored is not None:  # llhttp's end of it, before its body: not the end
            return
        self._in_message = False
        self._expect_nothing()
        super().on_message_complete()

    def on_headers_complete(self) -> None:
        self._in_head = False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > MAX_HEAD_BYTES:
            self._head_refused = True
            raise HeadTooLarge
        hosts = [value for name, value in self.headers if name == b"host"]
        if (
            len(hosts) > 1
            or (hosts and not is_valid_host(hosts[0]))
            or (not hosts and self.parser.get_http_version() != "1.0")
        ):
            self._refused_host = True
            raise BadHost
        self._expect_more()  # the body's first read, if one comes (else: message complete)
        if self.parser.should_upgrade() and self._is_an_offer_to_ignore():
            self._offer_ignored = self._head_without_upgrade()  # no app yet: see data_received
            return
        earlier = self.cycle
        super().on_headers_complete()
        if self.expect_100_continue and self.cycle is not earlier:  # (a websocket makes none)
            self.cycle.__class__ = _ContinueOrCloseCycle  # its task runs this send: not yet run

    def _should_upgrade(self) -> bool:
        """A websocket offer uvicorn takes (the app then refuses it: 403): a GET without a
        body, as RFC 6455 asks. Any other was handed to the websocket library, which refused
        it and sent nothing: the client waited, its connection held, until the read timeout."""
        if not super()._should_upgrade() or self.parser.get_method() != b"GET":
            return False
        for name, value in self.headers:
            if name == b"transfer-encoding" or (
                name == b"content-length" and value.lstrip(b"0")  # (on_header: no spaces)
            ):
                return False
        return True

    def _is_an_offer_to_ignore(self) -> bool:
        """llhttp stops at this head (any `Connection: upgrade` with any `Upgrade`, or a
        CONNECT): is it an offer, and not one uvicorn takes (a websocket)?"""
        return self.parser.get_method() != b"CONNECT" and not self._should_upgrade()

    def _head_without_upgrade(self) -> bytes:
        """This request's head again, less its `Upgrade` header and `Connection: upgrade`."""
        version = self.parser.get_http_version().encode()
        lines = [b"%s %s HTTP/%s" % (self.parser.get_method(), self.url, version)]
        for name, value in self.headers:  # names in lower case (uvicorn's on_header)
            if name == b"upgrade":
                continue
            if name == b"connection":
                kept = [t.strip() for t in value.split(b",") if t.strip().lower() != b"upgrade"]
                if not kept:
                    continue
                value = b", ".join(kept)
            lines.append(name + b": " + value)
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def _unsupported_upgrade_warning(self) -> None:
        """Called by uvicorn as the parser stops at an Upgrade it does not take: the same
        request, without the offer, and the bytes after its head go to a fresh parser."""
        stopped = sys.exception()
        head, self._offer_ignored = self._offer_ignored, None
        if head is None or not isinstance(stopped, httptools.HttpParserUpgrade):
            self._answer_then_close()  # CONNECT
            return
        replay = head + self._read[stopped.args[0] :]
        if replay == self._read:  # the head rebuilt stopped the parser again: never loop
            self._answer_then_close()
            return
        # As uvicorn makes its parser: a request that ends the connection may be followed by
        # bytes (pipelined), which are not an error (they were a 400 here, the answer lost).
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # httptools < 0.6.3
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self._replay = replay

    def _answer_then_close(self) -> None:
        """uvicorn's warning, and the connection ends with this request's answer: llhttp
        stopped at its head, and the bytes after it (a request pipelined behind a `CONNECT
        /path`) were dropped, the client waiting for their answer until the keep-alive ran
        out."""
        super()._unsupported_upgrade_warning()
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.transport.close()
        else:
            cycle.keep_alive = False

    def _expect_more(self) -> None:
        """The client owes bytes: they must come within `read_timeout` from now."""
        self._deadline = self.loop.time() + self.read_timeout
        if self._read_timer is None:
            self._read_timer = self.loop.call_at(self._deadline, self._check_deadline)

    def _expect_nothing(self) -> None:
        self._deadline = None  # a timer still set finds nothing to do

    def _check_deadline(self) -> None:
        self._read_timer = None
        deadline = self._deadline
        if deadline is None or self.transport.is_closing():
            return
        if self.loop.time() + 0.001 < deadline:  # moved since the timer was set
            self._read_timer = self.loop.call_at(deadline, self._check_deadline)
            return
        if self._waiting_on_us():
            self._expect_more()
            return
        if self._in_head:  # a response is owed, and no app has started on this request
            self._head_refused = True
            self.transport.write(_TIMEOUT_RESPONSE)
        elif self._in_message and self._answered():
            self.logger.info(
                "Rest of a body already answered not sent in %g s: connection closed",
                self.read_timeout,
            )
        elif self._in_message:  # the app reads this body: it sees the client gone
            self.logger.info("Request body paused over %g s: connection closed", self.read_timeout)
        self.transport.close()

    def _answered(self) -> bool:
        """Whether the request being read has had its whole response."""
        return self.cycle is not None and self.cycle.response_complete

    def _waiting_on_us(self) -> bool:
        """Whether the client's silence is ours to answer for (see the module's docstring)."""
        if self.flow.read_paused or self.pipeline:
            return True
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return False
        if self._in_message and not self._in_head:  # this request's body: the app reads it
            return bool(cycle.waiting_for_100_continue)
        return True  # an earlier request's response is still on its way

    def data_received(self, data: bytes) -> None:
        if self._head_refused or self._refusal is not None:
            return
        under_way = self._in_head
        past_head = self._in_message and not under_way
        self._gave_body = self._began = False
        self._read = data
        super().data_received(data)
        while self._replay is not None:  # an Upgrade ignored (see _unsupported_upgrade_warning)
            self._read, self._replay = self._replay, None
            super().data_received(self._read)
        self._read = b""
        if self._head_refused:
            return
        # A read in which a request began holds the ends of those before it, counted as
        # they ended: like the first read of any head, it is not counted whole.
        counted = not self._began
        if counted and under_way and self._in_head:
            self._head_reads += len(data)
            if self._head_reads > MAX_HEAD_BYTES + RAW_SLACK:
                self._head_refused = True
                self.send_400_response(HEAD_TOO_LARGE)
        elif self._gave_body:
            self._quiet_reads = 0
        elif counted and past_head and self._in_message:
            self._quiet_reads += len(data)
            if self._quiet_reads > MAX_HEAD_BYTES:
                self._head_refused = True
                self.logger.warning(
                    "Request trailers over %d bytes: connection closed", MAX_HEAD_BYTES
                )
                self.transport.close()
        if (
            not self._in_message
            and self._deadline is None
            and self.timeout_keep_alive_task is None
            and not self.pipeline
            and (self.cycle is None or self.cycle.response_complete)
        ):
            # Bytes that started no request, and uvicorn set its keep-alive timer aside for
            # them: a blank line after a response, the rest of a body already answered.
            self._expect_more()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request the parser refused (it has logged "Invalid HTTP
        request received." by then), in the API's JSON shape instead of uvicorn's plain text;
        a 431 when the head was too large. This connection's requests whose app has not
        started running (their tasks wait for the loop: this read's) never do, nor any queued
        behind them. A request whose app is running (an earlier read's) gets its answer
        first: the refusal waits for it (`on_response_complete`), or for its app to end,
        reading stopped meanwhile. If the refused read was in that request's own body, the
        body is over: an app that reads it sees the client gone (`refusals.BodyRefused`); one that
        does not (a DELETE, whose route reads no body) answers as it would have."""
        owed = settle_requests(self.tasks, self.transport)
        self.pipeline.clear()
        if self._head_refused:
            response = _RESPONSE
        else:
            message = BAD_HOST if self._refused_host else msg
            response = closing_response(b"400 Bad Request", message)
        if owed:
            self._refusal = response
            self._expect_nothing()
            self.flow.pause_reading()
            for task in owed:
                task.add_done_callback(lambda _: self._send_refusal())
            return
        self.transport.write(response)
        self.transport.close()

    def on_response_complete(self) -> None:
        """A response is complete: a refusal that waited for it goes out now, and the
        connection closes (see send_400_response)."""
        if self._refusal is None:
            super().on_response_complete()
            return
        self.server_state.total_requests += 1
        self._send_refusal()

    def _send_refusal(self) -> None:
        refusal, self._refusal = self._refusal, None
        if refusal is not None and not self.transport.is_closing():
            self.transport.write(refusal)
            self.transport.close()
