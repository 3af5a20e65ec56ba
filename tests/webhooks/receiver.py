"""A real HTTP/1.1 webhook receiver on 127.0.0.1 for tests (asyncio streams, keep-alive).

Each request is recorded; what it answers is decided by `respond`, a function of the
request (default 200). Outside our code, so it is a real server, not a mock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay_s: float = 0.0  # how long to wait before answering (timeouts)
    hold: asyncio.Event | None = None  # answer only once the test sets it (a send in flight)


Responder = Callable[[Received], Reply]


class Receiver:
    """`async with Receiver() as r:` then POST to `r.url`; `r.requests` is what arrived."""

    def __init__(self, respond: Responder | None = None) -> None:
        self.respond: Responder = respond or (lambda _r: Reply())
        self.requests: list[Received] = []
        self.arrived = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                received = Received(request_line.split(" ")[1], headers, body)
                self.requests.append(received)
                self.arrived.set()
                reply = self.respond(received)
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
                if reply.hold is not None:
                    await reply.hold.wait()
                extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
                writer.write(
                    f"HTTP/1.1 {reply.status} X\r\ncontent-length: {len(reply.body)}\r\n"
                    f"{extra}\r\n".encode("latin-1")
                    + reply.body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with suppress(Exception):
                writer.close()
            self._connections.discard(task)

    @property
    def ids(self) -> list[str]:
        return [r.webhook_id for r in self.requests]

    async def wait_for(self, count: int, timeout: float = 20.0) -> None:
        """Until at least `count` requests arrived (fails the test after `timeout`)."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()
