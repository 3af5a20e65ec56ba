"""The import's side of its reader process (`contacts.import_reader`): start it, read its
framed messages one ahead, and end and reap it however the import ends."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sys
from collections.abc import AsyncIterator

import msgspec

from contacts_api.contacts import import_reader

READER_MODULE = "contacts_api.contacts.import_reader"
_messages: msgspec.msgpack.Decoder[import_reader.Message] = msgspec.msgpack.Decoder(
    import_reader.Message  # type: ignore[arg-type]
)


@contextlib.asynccontextmanager
async def reader_process(
    options: import_reader.Options,
) -> AsyncIterator[Messages]:
    """The reader process and its decoded messages.

    A reader that sent its last message is let exit by itself (for up to
    `READER_EXIT_SECONDS`); whatever else ends the import (a failure, Ctrl-C's cancellation)
    kills it. Either way it is reaped. Killing one already exiting raced asyncio's reaping
    of it: Popen.kill() reaps an exited child itself, and asyncio's watcher then warned
    `Unknown child process pid …` (now and then, on a busy machine).
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        READER_MODULE,
        msgspec.json.encode(options).decode(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # The pipe is read while a frame is wanted (`Messages`); in between, reading stops
        # once 2 x limit bytes wait here (one more read can add up to a limit), the rest
        # waits in the pipe and the reader process.
        limit=PIPE_BUFFER_LIMIT,
    )
    errors: collections.deque[bytes] = collections.deque(maxlen=20)
    # Drained as it comes, so a chatty reader can never block on a full stderr pipe.
    drain = asyncio.create_task(_drain(process.stderr, errors))
    messages = Messages(process, errors)
    try:
        yield messages
    finally:
        for task in (drain, messages.pending):
            task.cancel()
        await asyncio.gather(drain, messages.pending, return_exceptions=True)
        if not messages.finished and process.returncode is None:
            process.kill()
        try:
            await asyncio.wait_for(_reap(process), READER_EXIT_SECONDS)
        except TimeoutError:  # a reader that said its last and never went: a bug of its own
            process.kill()
            await _reap(process)


READER_EXIT_SECONDS = 10


async def _reap(process: asyncio.subprocess.Process) -> None:
    # Both pipes to their end: wait() returns only once they are closed, and a pipe whose
    # reading is paused (the reader ran ahead, then the import stopped reading: Ctrl-C)
    # would never see its end.
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                await stream.read()
    await process.wait()


async def _drain(stream: asyncio.StreamReader | None, lines: collections.deque[bytes]) -> None:
    assert stream is not None
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line longer than the stream's limit: its start is dropped
            # (the rest comes back as a line of its own); reading goes on
            continue
        if not line:
            return
        lines.append(line)


# Before, a task read and decoded frames into a queue of one, so besides the batch being
# written one decoded batch waited in the queue, another waited to be put there, and up to
# 2 x 4 MiB of the next frame sat in the stream's buffer. Measured on 100,000 rows, SQLite,
# alternating runs, the writer's peak: import 135 -> 118 MB, re-import of the same file (every
# row takes the general path) 160 -> 141 MB; rows/s unchanged.
PIPE_BUFFER_LIMIT = 1 << 18


class Messages:
    """The reader's messages in order, one ahead: the next is read from the pipe and decoded
    while the caller writes this one, and no further (the reader process, blocked on a full
    pipe, holds the one after). One batch ahead keeps the writer busy, since the reader is
    the faster of the two; more would only cost memory."""

    def __init__(self, process: asyncio.subprocess.Process, errors: collections.deque[bytes]):
        self._process = process
        self._errors = errors
        self.finished = False  # the last message is in: the reader is ending (or ended)
        self.pending = asyncio.create_task(self._read())

    async def get(self) -> import_reader.Message:
        """The next message; after `Done` or `ReaderError`, that one again."""
        message = await self.pending
        if isinstance(message, import_reader.Done | import_reader.ReaderError):
            self.finished = True
        else:
            self.pending = asyncio.create_task(self._read())
        return message

    async def _read(self) -> import_reader.Message:
        stdout = self._process.stdout
        assert stdout is not None
        header = import_reader.FRAME_HEADER
        try:
            (size,) = header.unpack(await stdout.readexactly(header.size))
            return _messages.decode(await stdout.readexactly(size))
        except msgspec.DecodeError:
            # A frame we cannot read: the reader, alive and blocked on the pipe, never ends
            # by itself. End it, and say what happened.
            self._process.kill()
            await self._process.wait()
            return import_reader.ReaderError("the import's reader process sent an unreadable frame")
        except asyncio.IncompleteReadError:
            # The reader died without a word (killed, out of memory...): say so in one line.
            status = await self._process.wait()
            await asyncio.sleep(0.05)  # its last words, if any, reach the drain
            last = [b.decode(errors="replace").strip() for b in self._errors if b.strip()]
            detail = f": {last[-1]}" if last else ""
            return import_reader.ReaderError(
                f"the import's reader process stopped unexpectedly (exit status {status}){detail}"
            )
