"""A client that reads nothing of its answers for the read timeout is dropped.

Once the transport's buffer is over its high-water mark, uvicorn's requests wait to write, and
the server's read deadline (http/server_protocol.py) counts that as waiting on us: a client
that pipelined requests for `/openapi.json` (no key needed) and never read held its
connection, its buffers and a suspended request for good. Measured by progress, not time: a
client reading steadily but slowly (a 1.8 MB bulk answer at 300 KB/s) stays above the
low-water mark that resumes writing for longer than the timeout, and was cut off mid-answer by
a first version that counted time alone.
"""

from __future__ import annotations

import asyncio

from contacts_api.http.one_write import OneWriteHttpToolsProtocol


class WriteStallProtocol(OneWriteHttpToolsProtocol):
    """Drops a connection whose client read nothing of its answers for `read_timeout`."""

    read_timeout = 30.0  # seconds; each worker sets it from its settings (app.py)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._write_stall: asyncio.TimerHandle | None = None
        self._stalled_at = 0  # bytes queued for the client when that watch began
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._write_stall is not None:
            self._write_stall.cancel()
            self._write_stall = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The client is not reading its answers as fast as we send them: watch whether it
        reads any of them (the buffer shrinks) within `read_timeout`."""
        super().pause_writing()
        if self._write_stall is None:
            self._watch_write_stall()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_stall is not None:
            self._write_stall.cancel()
            self._write_stall = None

    def _watch_write_stall(self) -> None:
        self._stalled_at = self.transport.get_write_buffer_size()
        self._write_stall = self.loop.call_later(self.read_timeout, self._check_write_stall)

    def _check_write_stall(self) -> None:
        self._write_stall = None
        if self.transport.get_write_buffer_size() < self._stalled_at:  # it read some
            self._watch_write_stall()
            return
        self.logger.info(
            "Client read none of its answers for %g s: connection dropped", self.read_timeout
        )
        self.transport.abort()  # (a close would wait for the client to read what is queued)
