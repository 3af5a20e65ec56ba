"""`make bench`: load benchmarks on loopback, each figure next to a baseline from the same run.

For SQLite (and PostgreSQL when one answers on 127.0.0.1:5432): start `contacts-api serve`
with two workers, measure /healthz (the same server's ceiling), POST /v1/contacts (seed body,
unique email per request), GET /v1/contacts?limit=50 and GET /v1/contacts/detail, then seed
1,000,000 contacts into the account and measure again; then creates beside clients editing
contacts (bench/mixed_load.py). Then the bulk import benchmark.
Results: a table on stdout and bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from bench import import_bench, wrk
from bench import server as bench_server
from bench.mixed_load import measure_mix, print_mix
from bench.seed import seed_contacts
from bench.server import RunningServer, running_server

RESULTS = Path(__file__).parent / "results"
SEEDED = 1_000_000  # BENCH_SEEDED_CONTACTS, read by parse_arguments()


def measure(server: RunningServer, phase: str) -> list[dict[str, Any]]:
    run_id = secrets.token_hex(3)
    rows = []
    health = wrk.run("GET /healthz", f"{server.url}/healthz")
    create = wrk.run(
        "POST /v1/contacts", f"{server.url}/v1/contacts", "create.lua", server.key, run_id
    )
    rss = server.worker_rss_mb()
    listing = wrk.run(
        "GET /v1/contacts?limit=50",
        f"{server.url}/",
        "get.lua",
        server.key,
        "/v1/contacts?limit=50",
    )
    max_id = str(max(create.requests, 1))
    detail = wrk.run(
        "GET /v1/contacts/detail",
        f"{server.url}/",
        "get.lua",
        server.key,
        "/v1/contacts/detail?contactId={id}",
        max_id,
    )
    for result in (health, create, listing, detail):
        row = {"phase": phase, **result.as_dict()}
        row["ratio_to_healthz"] = round(result.requests_per_s / health.requests_per_s, 3)
        rows.append(row)
    rows[1]["worker_rss_mb"] = [round(x, 1) for x in rss]
    return rows


def bench_database(database_url: str, label: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The routes' figures (empty, then seeded) and creates beside edits."""
    rows: list[dict[str, Any]] = []
    with running_server(database_url) as server:
        print(f"[{label}] empty database…", file=sys.stderr, flush=True)
        rows += measure(server, "empty")
        print(f"[{label}] seeding {SEEDED:,} contacts…", file=sys.stderr, flush=True)
        started = time.perf_counter()
        seed_contacts(database_url, server.account_id, server.user_id, SEEDED)
        print(
            f"[{label}] seeded in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        seeded = measure(server, f"{SEEDED:,} contacts")
        rows += seeded
        # Last: its deletes would turn the detail reads above (ids 1..n) into 404s.
        print(f"[{label}] creates beside edits…", file=sys.stderr, flush=True)
        creates = next(row for row in seeded if row["route"] == "POST /v1/contacts")
        mix = measure_mix(server, creates_alone=creates["requests_per_s"])
    for row in rows:
        row["database"] = label
    return rows, mix


def postgres_database() -> tuple[str, str] | None:
    from tests.run_suite import create_throwaway_database

    return create_throwaway_database()


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'database':<11}{'phase':<20}{'route':<28}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'non-2xx':>9}{'÷healthz':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['database']:<11}{r['phase']:<20}{r['route']:<28}{r['requests_per_s']:>10,.0f}"
            f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['non_2xx']:>9}{r['ratio_to_healthz']:>10.2f}"
        )


def print_import(figures: dict[str, Any]) -> None:
    print(f"\nimport of {figures['rows']:,} generated rows")
    print(f"{'database':<11}{'run':<24}{'rows/s':>10}{'peak MB':>9}{'÷raw insert':>13}")
    for label in ("sqlite", "postgresql"):
        result = figures.get(label)
        if not isinstance(result, dict):  # "skipped: no PostgreSQL ..."
            print(f"{label:<11}{result}")
            continue
        raw = result["raw_insert"]["rows_per_s"]
        for run in ("import", "rerun_same_file", "each_contact_twice", "raw_insert"):
            r = result.get(run)
            if r is None:
                continue
            name = f"raw {r['method']}" if run == "raw_insert" else run
            # Each contact twice is another file (every row set aside to the end): no ratio.
            ratio = "" if run == "each_contact_twice" else f"{r['rows_per_s'] / raw:.2f}"
            print(f"{label:<11}{name:<24}{r['rows_per_s']:>10,}{r['peak_mb']:>9.0f}{ratio:>13}")


KNOBS = """settings, from the environment:
  BENCH_SECONDS          seconds per wrk run (default 10)
  BENCH_SEEDED_CONTACTS  contacts seeded before the second phase (default 1000000)
  BENCH_WORKERS          server worker processes (default 2)
  BENCH_STDERR=1         show the server's stderr
"""


def parse_arguments(argv: list[str] | None = None) -> None:
    """--help, and an error for anything else or a setting that is not a number: the run
    takes several minutes, so a mistyped option must not start it."""
    global SEEDED
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=(__doc__ or "").split("\n\n")[0],
        epilog=KNOBS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    wrk.DURATION_S = _setting(parser, "BENCH_SECONDS", wrk.DURATION_S, least=1)
    SEEDED = _setting(parser, "BENCH_SEEDED_CONTACTS", SEEDED, least=0)
    bench_server.WORKERS = _setting(parser, "BENCH_WORKERS", bench_server.WORKERS, least=1)


def _setting(parser: argparse.ArgumentParser, name: str, default: int, least: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        parser.error(f"{name} must be a whole number of at least {least}, not {text!r}")
    return value


def main() -> None:
    import tempfile

    from tests.run_suite import drop_database

    parse_arguments()
    wrk.require_wrk()
    rows: list[dict[str, Any]] = []
    mixes: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_rows, mixes["sqlite"] = bench_database(f"sqlite:///{tmp}/bench.db", "sqlite")
        rows += sqlite_rows
    throwaway = postgres_database()
    if throwaway is None:
        print("PostgreSQL does not answer on 127.0.0.1:5432: skipped", file=sys.stderr)
    else:
        try:
            pg_rows, mixes["postgresql"] = bench_database(throwaway[1], "postgresql")
            rows += pg_rows
        finally:
            drop_database(*throwaway)
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "wrk": {"threads": wrk.THREADS, "connections": wrk.CONNECTIONS, "seconds": wrk.DURATION_S},
        "http": rows,
        "creates_beside_edits": mixes,
    }
    report["import"] = import_bench.run()
    print_table(rows)
    print_mix(mixes)
    print_import(report["import"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {RESULTS / 'latest.json'}")


if __name__ == "__main__":
    main()
