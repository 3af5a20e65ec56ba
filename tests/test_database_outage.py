"""The database goes away under a running server, and comes back."""

from __future__ import annotations

from pathlib import Path

import httpx

from contacts_api.storage import migrate
from contacts_api.storage.engine import Database
from tests.factories import new_account
from tests.postgres_cluster import throwaway_cluster
from tests.servers import serve, wait_until


async def test_requests_fail_cleanly_while_postgresql_is_down_and_recover_after(
    tmp_path: Path,
) -> None:
    with throwaway_cluster() as cluster:
        migrate.upgrade(cluster.url)
        db = Database(cluster.url)
        account = await new_account(db)
        await db.dispose()
        env = {"CONTACTS_API_DATABASE_URL": cluster.url}

        log = tmp_path / "server.log"
        with (
            serve(env, log=log, ready_path="/readyz") as base,
            httpx.Client(base_url=base, headers=account.headers, timeout=30) as client,
        ):
            before = client.post("/v1/contacts", json={"email": "before@example.com"})
            detail = {"contactId": before.json()["data"]["contact"]["id"]}
            reads = ("/v1/contacts", "/v1/contacts/detail")
            reads_before = [client.get(path, params=detail) for path in reads]

            cluster.stop()
            during = [
                client.post("/v1/contacts", json={"email": f"during{n}@example.com"})
                for n in range(3)
            ]
            # The hot reads use a pool of their own (storage/engine.py: Database.raw_read).
            during += [client.get(path, params=detail) for path in reads]
            ready_during = client.get("/readyz")
            alive_during = client.get("/healthz")

            cluster.start()
            wait_until(
                lambda: client.get("/readyz").status_code == 200, what="/readyz after restart"
            )
            reads_after = [client.get(path, params=detail) for path in reads]
            after = client.post("/v1/contacts", json={"email": "after@example.com"})

    assert before.status_code == 201
    assert [r.status_code for r in reads_before + reads_after] == [200] * 4
    assert reads_after[0].json()["data"]["count"] == 1
    for answer in during:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        assert set(answer.json()) == {"message"}
        assert "Traceback" not in answer.text
    assert ready_during.status_code == 503
    assert alive_during.status_code == 200
    assert after.status_code == 201
    assert "Traceback" not in log.read_text()
