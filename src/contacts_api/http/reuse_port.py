"""`serve --workers N` on Linux: each worker accepts on a listening socket of its own.

uvicorn binds one socket in the supervisor and every worker accepts from it. The worker whose
loop wakes first accepts everything pending (libuv accepts until the queue is empty), so a
burst of new connections, such as a load balancer opening its pool, can land mostly on one
worker, and stays there for as long as the connections live. Measured with wrk's 64
connections, three alternated pairs: `/healthz` 21,005, 11,629 and 12,071 req/s on the shared
socket (one worker busy, the other mostly idle), 20,711, 21,397 and 21,420 on sockets of
their own; creates 5,701-6,463 against 5,550-6,647. Hashing spreads well, not evenly: wrk's
connections split 27/37, 24/40 and 29/35.

With SO_REUSEPORT every worker binds a socket of its own to the same address, and the kernel
spreads new connections over them by a hash of each connection's addresses and ports. The
supervisor's socket stays bound (it holds the port) but never listens, so it is given no
connection. Linux only: elsewhere SO_REUSEPORT does not spread connections, and the shared
socket stays. A worker that exits drops the connections still queued on its own socket, where
the shared socket would have kept them for the others (uvicorn restarts the worker).
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any, TypeVar

S = TypeVar("S", bound=socket.socket)


def available() -> bool:
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


class WorkerSocket(socket.socket):
    """The supervisor's bound, never listening socket; each worker process that unpickles it
    (uvicorn hands its sockets to workers by pickling) gets a fresh one on the same address."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_bound, (socket.socket, self.family, self.getsockname()))


def _bound(kind: type[S], family: socket.AddressFamily, address: Any) -> S:
    """A `kind` socket bound to `address` with SO_REUSEPORT (not listening yet)."""
    sock = kind(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def supervisor_socket(host: str, port: int) -> WorkerSocket:
    """Bound to (host, port) with SO_REUSEPORT, holding the port (`port=0` picks one).

    The port is first bound without SO_REUSEPORT, which fails (OSError) while anything holds
    it, a second `serve` included: SO_REUSEPORT alone would let one quietly share it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]
    return _bound(WorkerSocket, family, (host, port))


def run_workers(app: str, sock: WorkerSocket, host: str, **options: Any) -> None:
    """uvicorn.run's multi-worker path (its Multiprocess supervisor: health checks, restarts,
    signals), with a socket of its own in each worker; closes `sock` at the end."""
    from uvicorn import Config
    from uvicorn.supervisors import Multiprocess

    config = Config(app, host=host, port=sock.getsockname()[1], **options)
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d, a listening socket in each worker (SO_REUSEPORT)",
        host,
        sock.getsockname()[1],
    )
    try:
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
