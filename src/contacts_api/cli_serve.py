"""`contacts-api serve`: migrate, then run uvicorn (one process, or workers each with a
listening socket of their own), with the checks that make a failed start one line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy.exc
import typer

from contacts_api.settings import Settings, redacted_url

# contacts_api.cli registers `serve` after its helpers (fail, upgrade_database), which are
# imported where they are used, as the webhooks commands do.


def warn_if_redis_is_away(url: str) -> None:
    """Serving goes ahead without Redis (limits fail open), but the operator should know."""
    import redis
    import structlog

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        structlog.get_logger(__name__).warning(
            "redis does not answer: rate limits are not enforced until it does",
            error=f"{type(exc).__name__}: {exc}",
        )
    finally:
        client.close()


APP_FACTORY = "contacts_api.app:create_app_from_env"
MAX_WORKERS = max(8, 4 * (os.cpu_count() or 1))


def require_free_port(host: str, port: int) -> None:
    """One line and exit 1 when host:port cannot be listened on. One uvicorn process binds
    only after the app and its webhook dispatcher have started, then exited with status 3
    and its own log lines."""
    from contacts_api.cli_run import fail

    try:
        # Every address asyncio's create_server would bind, bound as it binds them.
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, _, _, address in found:
            with socket.socket(family, kind) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class _Terminated(Exception):
    """SIGTERM, raised again by uvicorn once it has stopped."""


def _terminated(_signum: int, _frame: object) -> None:
    raise _Terminated


def serve(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    # (65536 and up were taken, and uvicorn listened on some other port without a word.)
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port")] = 4000,
    # (100,000 forked until memory ran out; past one per core, more workers only cost memory.)
    workers: Annotated[int, typer.Option(min=1, max=MAX_WORKERS, help="Worker processes")] = 1,
) -> None:
    """Apply pending migrations, then serve the API."""
    if not host.strip():  # uvicorn took it for every interface, without a word
        raise typer.BadParameter(
            "empty: give an address, such as 127.0.0.1 or 0.0.0.0 (every interface)",
            param_hint="'--host'",
        )
    import shutil
    import tempfile

    import uvicorn

    from contacts_api.bootstrap import bootstrap_first_run
    from contacts_api.cli import upgrade_database
    from contacts_api.cli_run import driver_says, fail
    from contacts_api.http import reuse_port
    from contacts_api.http.ratelimit import shared_file
    from contacts_api.logging import configure_logging
    from contacts_api.storage import sqlite_setup

    settings = Settings()
    configure_logging(settings)
    one_process = workers == 1 or not reuse_port.available()
    if one_process:
        require_free_port(host, port)
    if settings.redis_url:
        warn_if_redis_is_away(settings.redis_url)
    upgrade_database(settings)
    unwritable = sqlite_setup.write_problem(settings.database_url)
    if unwritable is not None:
        raise fail(unwritable)
    try:
        asyncio.run(bootstrap_first_run(settings, host, port))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        url = redacted_url(settings.database_url)
        raise fail(f"database error on {url}: {driver_says(exc)}") from None
    # Workers write their metrics to files here and /metrics adds them up (http/metrics.py).
    # Set before uvicorn imports the app in this process or any worker.
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="contacts-api-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    # Several workers and no Redis: one rate-limit budget all the same, counted in a file the
    # workers share (http/ratelimit/shared_file.py); each worker counting alone would let
    # N times the limit through.
    limits_dir = None
    if workers > 1 and not settings.redis_url:
        limits_dir = tempfile.mkdtemp(prefix="contacts-api-limits-")
        shared_file.create_file(Path(limits_dir) / "rate-limits")
        os.environ[shared_file.SHARED_FILE_ENV] = str(Path(limits_dir) / "rate-limits")
    options: dict[str, Any] = {
        "factory": True,
        "workers": workers,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "timeout_keep_alive": settings.keep_alive_seconds,
        # uvicorn's httptools protocol, each response sent in one write (http/one_write.py),
        # request heads bounded (http/server_protocol.py).
        "http": "contacts_api.http.server_protocol:ServerHttpProtocol",
    }
    terminated = False
    try:
        if not one_process:
            # A listening socket in each worker (http/reuse_port.py).
            try:
                sock = reuse_port.supervisor_socket(host, port)
            except OSError as exc:
                raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            reuse_port.run_workers(APP_FACTORY, sock, host, **options)
        else:
            # uvicorn stops gracefully on SIGTERM, then raises it again: with its default
            # action the process ended there, leaving the metrics folder behind. It is
            # raised once more, by default, after the folder is gone: a service manager
            # sees the process ended by its SIGTERM, as before.
            signal.signal(signal.SIGTERM, _terminated)
            try:
                uvicorn.run(APP_FACTORY, host=host, port=port, **options)
            except _Terminated:
                terminated = True
    finally:
        for made in (metrics_dir, limits_dir):
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
    if terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
