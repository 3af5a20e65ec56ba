"""A client that leaves before its body arrived (a load generator stopping, a closed tab) is
routine: one info line in the log, no error, no traceback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.factories import sqlite_file_with_account
from tests.servers import serve, wait_until


def log_events(log: Path) -> list[dict[str, object]]:
    events = []
    for line in log.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # not one of ours
    return events


async def test_a_client_gone_mid_body_is_logged_without_a_traceback(tmp_path: Path) -> None:
    url, account = await sqlite_file_with_account(tmp_path / "d.db")
    log = tmp_path / "server.log"
    headers = "".join(f"{name}: {value}\r\n" for name, value in account.headers.items())
    with serve(
        {"CONTACTS_API_DATABASE_URL": url, "CONTACTS_API_LOG_LEVEL": "INFO"}, log=log
    ) as base:
        port = int(base.rsplit(":", 1)[1])
        for path in ("/v1/contacts", "/v1/contacts/bulk"):  # the hot route and a Litestar one
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}"
                    "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                    '{"email": "'.encode()
                )
            wait_until(
                lambda p=path: any(
                    event.get("event") == "client disconnected before its body arrived"
                    and event.get("path") == p
                    for event in log_events(log)
                ),
                timeout=10,
                what=f"the disconnect on {path} logged",
            )
    text = log.read_text()
    assert "Traceback" not in text
    assert "unhandled error" not in text
