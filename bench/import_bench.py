"""Import benchmark: 100,000 generated rows into an empty SQLite database and into PostgreSQL.

Each measurement runs in its own subprocess (so peak memory is that run's own, read from
getrusage; for the import, `peak_mb` adds the reader process's own peak to the writer's),
next to a raw `executemany` insert of the same rows through the bare driver in the
same run: the ratio import/raw is the figure. `python -m bench.import_bench [ROWS]`, or
`run() -> dict`; results go to bench/results/import.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.run_suite import create_throwaway_database, drop_database

ROWS = 100_000
RESULTS = Path(__file__).parent / "results" / "import.json"
HEADER = [
    "firstName", "lastName", "email", "phoneNumber", "status", "tag", "joinedTime",
    "utm", "country", "timeZone",
]  # fmt: skip


def generate(path: Path, rows: int) -> None:
    """A CSV of `rows` distinct contacts, shaped like a CRM export (10 tags, a few UTMs)."""
    rnd = random.Random(7)
    sources = ["google", "bing", "newsletter", "linkedin", "partner"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(rows):
            writer.writerow(
                [
                    f"First{i % 997}",
                    f"Last{i % 1009}",
                    f"lead{i}@example{i % 50}.com",
                    f"+1555{i:07d}",
                    rnd.choice(["POTENTIAL", "QUALIFIED", "DISQUALIFIED"]),
                    f"list-{i % 10}",
                    f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00.000Z",
                    f"utm_source={rnd.choice(sources)}&utm_medium=cpc&utm_campaign=c{i % 20}",
                    "US",
                    "America/New_York",
                ]
            )


def generate_each_contact_twice(path: Path, rows: int) -> None:
    """`rows` rows of rows/2 contacts, each on two rows (the second with another last name),
    as two lists of the same leads concatenated: every row is set aside to the file's end
    (contacts/import_deferred.py), the import's memory worst case."""
    once = path.with_suffix(".once.csv")
    generate(once, rows // 2)
    header, *lines = once.read_text().splitlines(keepends=True)
    once.unlink()
    later = [line.replace(",Last", ",Later", 1) for line in lines]
    path.write_text(header + "".join(lines) + "".join(later))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def worker_import(url: str, path: Path) -> dict[str, Any]:
    from contacts_api.bulk_jobs import import_file
    from contacts_api.storage.engine import Database

    async def go() -> dict[str, Any]:
        db = Database(url)
        try:
            started = time.perf_counter()
            summary = await import_file(db, path, "bench")
            seconds = time.perf_counter() - started
        finally:
            await db.dispose()
        return {
            "seconds": seconds,
            "rows": summary.rows,
            "created": summary.created,
            "unchanged": summary.unchanged,
            "failed": summary.failed,
            "reader_peak_mb": summary.reader_peak_mb,
        }

    return asyncio.run(go())


def worker_raw(url: str, path: Path) -> dict[str, Any]:
    """The floor: the same rows, already shaped, through the bare driver.

    SQLite: one `executemany`; PostgreSQL: `COPY` (see below why not executemany).
    """
    from sqlalchemy.engine import make_url

    now = datetime.now(UTC)
    sqlite = make_url(url).get_backend_name() == "sqlite"
    started = time.perf_counter()
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = [
            (
                1, 1, r["email"], r["email"].lower(), r["firstName"], r["lastName"], r["status"],
                r["phoneNumber"], "contact_" + secrets.token_urlsafe(9), False,
                r["joinedTime"][:-1] if sqlite else datetime.fromisoformat(r["joinedTime"]),
                r["country"], r["timeZone"], json.dumps({"utm_source": "x"}),
                now.replace(tzinfo=None).isoformat() if sqlite else now,
                now.replace(tzinfo=None).isoformat() if sqlite else now,
            )
            for r in reader
        ]  # fmt: skip
    columns = (
        "account_id, user_id, email, email_key, first_name, last_name, status, phone_number,"
        " preview_id, blocked_by_recaptcha, joined_time, country, time_zone, tracking,"
        " created_at, updated_at"
    )
    sql = f"INSERT INTO contact ({columns}) VALUES ({{}})"
    if sqlite:
        import sqlite3

        conn = sqlite3.connect(make_url(url).database or "")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        # As the server's own connections (storage/engine.py).
        conn.execute("PRAGMA temp_store=MEMORY")
        # And the import's page cache (bulk_jobs.IMPORT_SQLITE_CACHE_KIB): with SQLite's
        # default 2 MB the 12 indexes' pages keep leaving the cache, a handicap the import
        # does not have.
        from contacts_api.bulk_jobs import IMPORT_SQLITE_CACHE_KIB

        conn.execute(f"PRAGMA cache_size = -{IMPORT_SQLITE_CACHE_KIB}")
        with conn:
            conn.executemany(sql.format(", ".join("?" * 16)), rows)
        conn.close()
    else:
        import psycopg

        # COPY, not executemany: psycopg's executemany sends one INSERT per row, and the
        # live-count statement trigger (migration 0005) then runs once per row, updating one
        # counter row 100,000 times in one transaction, slower with every update (~1 ms a row
        # here): no floor at all. COPY is the driver's fastest bulk insert and fires the
        # trigger once, as the import's one statement per batch does.
        copy_sql = f"COPY contact ({columns}) FROM STDIN"
        with psycopg.connect(url) as pg, pg.cursor() as cur, cur.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
    return {
        "seconds": time.perf_counter() - started,
        "rows": len(rows),
        "created": len(rows),
        "method": "executemany" if sqlite else "COPY",
    }


def _measure(kind: str, url: str, path: Path) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; adds rows/s and peak memory."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.import_bench", "--worker", kind, url, str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    result["rows_per_s"] = round(result["rows"] / result["seconds"])
    result["seconds"] = round(result["seconds"], 3)
    return result


def _prepare(url: str) -> None:
    """Migrate and create the account `bench` (empty database)."""
    from contacts_api.accounts import service as accounts
    from contacts_api.storage import migrate
    from contacts_api.storage.engine import Database
    from contacts_api.timeutil import utcnow

    migrate.upgrade(url)

    async def go() -> None:
        db = Database(url)
        async with db.transaction() as conn:
            await accounts.create_account(conn, "bench", "owner@bench.test", utcnow())
        await db.dispose()

    asyncio.run(go())


def _bench_backend(fresh_url: Any, path: Path, twice: Path) -> dict[str, Any]:
    raw_url = fresh_url("raw")
    _prepare(raw_url)
    raw = _measure("raw", raw_url, path)
    import_url = fresh_url("import")
    _prepare(import_url)
    imported = _measure("import", import_url, path)
    rerun = _measure("import", import_url, path)
    twice_url = fresh_url("twice")
    _prepare(twice_url)
    each_twice = _measure("import", twice_url, twice)
    return {
        "import": imported,
        "rerun_same_file": rerun,
        "each_contact_twice": each_twice,
        "raw_insert": raw,
        "ratio_import_to_raw": round(imported["rows_per_s"] / raw["rows_per_s"], 3),
    }


def run(rows: int = ROWS) -> dict[str, Any]:
    """Generate, import into SQLite and PostgreSQL, compare with raw executemany."""
    report: dict[str, Any] = {"rows": rows, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "leads.csv"
        generate(path, rows)
        twice = Path(tmp) / "twice.csv"
        generate_each_contact_twice(twice, rows)
        report["file_mb"] = round(path.stat().st_size / 1e6, 1)
        sqlite_url = lambda name: f"sqlite:///{tmp}/{name}.db"  # noqa: E731
        report["sqlite"] = _bench_backend(sqlite_url, path, twice)
        created: list[tuple[str, str]] = []

        def fresh_pg(_name: str) -> str:
            database = create_throwaway_database()
            if database is None:
                raise RuntimeError("no PostgreSQL")
            created.append(database)
            return database[1]

        try:
            report["postgresql"] = _bench_backend(fresh_pg, path, twice)
        except RuntimeError:
            report["postgresql"] = "skipped: no PostgreSQL on 127.0.0.1:5432"
        finally:
            for admin, url in created:
                drop_database(admin, url)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, url, path = sys.argv[2], sys.argv[3], Path(sys.argv[4])
        result = (worker_import if kind == "import" else worker_raw)(url, path)
        result["peak_mb"] = round(_peak_mb(), 1)
        result["process_cpu_s"] = round(_cpu_seconds(), 3)
        if result.get("reader_peak_mb") is not None:
            # The import's reader process: its CPU, and its peak added to the writer's in
            # `peak_mb` (an upper bound of the import's footprint: the peaks need not coincide).
            result["reader_cpu_s"] = round(_cpu_seconds(resource.RUSAGE_CHILDREN), 3)
            result["writer_peak_mb"] = result["peak_mb"]
            result["peak_mb"] = round(result["peak_mb"] + result["reader_peak_mb"], 1)
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(
        prog="python -m bench.import_bench",
        description="The bulk import benchmark alone (make bench runs it after the routes).",
    )
    parser.add_argument("rows", nargs="?", type=int, default=ROWS, help=f"default {ROWS:,}")
    rows = parser.parse_args().rows
    if rows < 1:
        parser.error("rows must be at least 1")
    print(json.dumps(run(rows), indent=2))


if __name__ == "__main__":
    main()
