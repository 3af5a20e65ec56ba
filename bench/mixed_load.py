"""Creates beside edits: wrk's creates (as in `measure`) while clients edit contacts as fast
as they can (PUT, notes, bulk requests of 20, DELETE of contacts they made), for the same
bounded time. Reports creates/s next to creates/s alone from the same run, and the edits'
rate, latency and failures: on SQLite every writer takes a turn at the write lock
(storage/writer_turn.py), and a stream of create batches must not starve the edits.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import subprocess
import time
from collections import Counter
from typing import Any

import httpx

from bench import wrk
from bench.server import RunningServer

EDIT_CLIENTS = 24
BULK_SIZE = 20


async def _edit_client(
    client: httpx.AsyncClient,
    stop_at: float,
    seed: int,
    statuses: Counter[str],
    latencies: list[float],
) -> None:
    rnd = random.Random(seed)
    made: list[int] = []  # contacts this client created (by bulk), to edit and delete
    while time.monotonic() < stop_at:
        choice = rnd.choice(("put", "put", "note", "bulk", "delete")) if made else "bulk"
        started = time.monotonic()
        if choice == "bulk":
            body = [{"email": f"mix.{secrets.token_hex(6)}@example.com", "firstName": "Mix"}
                    for _ in range(BULK_SIZE)]  # fmt: skip
            response = await client.post("/v1/contacts/bulk", json=body)
            if response.status_code == 200:
                results = response.json()["data"]["results"]
                made += [r["contact"]["id"] for r in results if r.get("contact")]
        elif choice == "put":
            body = {"id": rnd.choice(made), "firstName": f"Edit{rnd.randrange(1000)}"}
            response = await client.put("/v1/contacts", json=body)
        elif choice == "note":
            body = {"contactId": rnd.choice(made), "note": "called back"}
            response = await client.post("/v1/contacts/notes", json=body)
        else:
            victim = made.pop(rnd.randrange(len(made)))
            response = await client.delete("/v1/contacts", params={"id": victim})
        latencies.append(time.monotonic() - started)
        statuses[f"{choice} {response.status_code}"] += 1


async def _edits(server: RunningServer, seconds: float) -> tuple[Counter[str], list[float]]:
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=EDIT_CLIENTS)
    headers = {"Authorization": f"Bearer {server.key}"}
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, timeout=30, limits=limits
    ) as client:
        await asyncio.gather(
            *(_edit_client(client, stop_at, n, statuses, latencies) for n in range(EDIT_CLIENTS))
        )
    return statuses, latencies


def measure_mix(server: RunningServer, creates_alone: float) -> dict[str, Any]:
    """One bounded run of creates beside edits; `creates_alone`: creates/s measured alone."""
    run_id = secrets.token_hex(3)
    command = wrk.command(f"{server.url}/v1/contacts", "create.lua", server.key, run_id)
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as load:
        statuses, latencies = asyncio.run(_edits(server, wrk.DURATION_S))
        output, _ = load.communicate(timeout=wrk.DURATION_S + 30)
    creates = wrk.parse("POST /v1/contacts beside edits", output)
    latencies.sort()
    failed = sum(n for key, n in statuses.items() if not key.split()[1].startswith("2"))
    return {
        "creates_per_s": round(creates.requests_per_s),
        "creates_p99_ms": creates.p99_ms,
        "creates_non_2xx": creates.non_2xx,
        "creates_alone_per_s": round(creates_alone),
        "ratio_to_creates_alone": round(creates.requests_per_s / creates_alone, 3),
        "edit_clients": EDIT_CLIENTS,
        "edits": len(latencies),
        "edits_per_s": round(len(latencies) / wrk.DURATION_S),
        "edits_p50_ms": round(_percentile(latencies, 0.50) * 1000, 1),
        "edits_p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "edits_max_ms": round(latencies[-1] * 1000, 1) if latencies else 0.0,
        "edits_non_2xx": failed,
        "edits_by_status": dict(sorted(statuses.items())),
    }


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def print_mix(figures: dict[str, dict[str, Any]]) -> None:
    edits = f"PUT, notes, bulk of {BULK_SIZE}, DELETE"
    print(f"\ncreates beside {EDIT_CLIENTS} editing clients ({edits})")
    print(
        f"{'database':<11}{'creates/s':>10}{'÷alone':>8}{'non-2xx':>9}"
        f"{'edits/s':>9}{'edit p50':>10}{'edit p99':>10}{'edit max':>10}{'non-2xx':>9}"
    )
    for label, r in figures.items():
        print(
            f"{label:<11}{r['creates_per_s']:>10,}{r['ratio_to_creates_alone']:>8.2f}"
            f"{r['creates_non_2xx']:>9}{r['edits_per_s']:>9,}{r['edits_p50_ms']:>8.0f}ms"
            f"{r['edits_p99_ms']:>8.0f}ms{r['edits_max_ms']:>8.0f}ms{r['edits_non_2xx']:>9}"
        )
