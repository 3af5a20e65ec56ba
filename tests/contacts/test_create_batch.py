"""Group-committed creates remember tag and event ids across batches, and only committed ones."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from contacts_api.accounts.schemas import Principal
from contacts_api.contacts import bulk, bulk_repository, service
from contacts_api.contacts.create_batch import CreateBatchHandler, CreateJob
from contacts_api.errors import Conflict, ValidationFailed
from contacts_api.storage.engine import Database
from contacts_api.storage.group_commit import GroupCommitter
from contacts_api.storage.models import contact_table, tag_table
from contacts_api.timeutil import utcnow
from tests.factories import AccountFixture, new_account, new_event
from tests.lock_waits import until_a_writer_waits


class RolledBack(Exception):
    pass


def job(account: AccountFixture, **body: object) -> CreateJob:
    principal = Principal(account_id=account.account_id, user_id=account.user_id, key_id=0)
    return CreateJob(principal, service.parse_contact_create(body), utcnow())


async def stored_tag_of(db: Database, email: str) -> str | None:
    query = (
        sa.select(tag_table.c.name)
        .select_from(contact_table.join(tag_table, tag_table.c.id == contact_table.c.tag_id))
        .where(contact_table.c.email == email)
    )
    async with db.read() as conn:
        return (await conn.execute(query)).scalar_one_or_none()


async def test_a_tag_created_by_a_rolled_back_batch_is_not_remembered(db: Database) -> None:
    account = await new_account(db)
    handler = CreateBatchHandler("upsert")
    with pytest.raises(RolledBack):
        async with db.transaction() as conn:
            await handler(conn, [job(account, email="a@x.io", tag="spring")])
            raise RolledBack  # the commit never happens: nor does the tag
    handler.finished(conn, committed=False)
    assert handler.known.tags == {}

    committer = GroupCommitter(db, handler, after_batch=handler.finished)
    try:
        await committer.submit(job(account, email="b@x.io", tag="spring"))
        # Once committed, the tag is known, and a later batch uses it without asking.
        assert set(handler.known.tags) == {(account.account_id, "spring")}
        await committer.submit(job(account, email="c@x.io", tag="spring"))
    finally:
        await committer.stop()
    assert await stored_tag_of(db, "b@x.io") == "spring"
    assert await stored_tag_of(db, "c@x.io") == "spring"


async def test_an_unknown_event_is_found_once_it_exists(db: Database) -> None:
    account = await new_account(db)
    handler = CreateBatchHandler("upsert")
    committer = GroupCommitter(db, handler, after_batch=handler.finished)
    try:
        with pytest.raises(ValidationFailed):
            await committer.submit(job(account, email="a@x.io", eventName="Launch"))
        event_id = await new_event(db, account, "Launch")
        outcome = await committer.submit(job(account, email="a@x.io", eventName="Launch"))
        assert outcome.contact.event_id == event_id
        # Another account's event of the same name is its own.
        other = await new_account(db, "globex", "owner@globex.test")
        other_event = await new_event(db, other, "Launch")
        outcome = await committer.submit(job(other, email="a@x.io", eventName="Launch"))
        assert outcome.contact.event_id == other_event != event_id
    finally:
        await committer.stop()


async def test_a_failing_batch_falls_back_to_one_create_per_job(db: Database) -> None:
    """Should the batched SQL fail, its writes are rolled back to the savepoint and each job
    runs alone: every good job lands once, a bad one fails alone."""
    account = await new_account(db)
    recorded: list[int] = []

    async def recorder(conn: object, account_id: int, changes: list[object], now: object) -> None:
        if len(changes) > 1:  # the batched path records the whole batch at once
            raise RuntimeError("the batched path broke")
        recorded.append(len(changes))

    handler = CreateBatchHandler("upsert", record_change=recorder)  # type: ignore[arg-type]
    jobs = [
        job(account, email="a@x.io", tag="spring"),
        job(account, email="b@x.io", tag="spring"),
        job(account, email="c@x.io", eventName="Missing"),
    ]
    async with db.transaction() as conn:
        outcomes = await handler(conn, jobs)
    handler.finished(conn, committed=True)
    assert [type(o).__name__ for o in outcomes] == [
        "CreateOutcome",
        "CreateOutcome",
        "ValidationFailed",
    ]
    # Created (not updated): nothing of the failed batched attempt was left behind.
    assert [getattr(o, "created", None) for o in outcomes] == [True, True, None]
    assert recorded == [1, 1]
    async with db.read() as conn:
        emails = (await conn.execute(sa.select(contact_table.c.email))).scalars().all()
        tags = (await conn.execute(sa.select(tag_table.c.name))).scalars().all()
    assert sorted(emails) == ["a@x.io", "b@x.io"]
    assert tags == ["spring"]
    # The tag the failed batched attempt created was rolled back: only the fallback's counts,
    # and the fallback (one create at a time) does not go through the cache.
    assert handler.known.tags == {}


async def test_batches_of_known_leads_look_up_first_and_new_ones_insert_first(db: Database) -> None:
    """Insert-first (new leads; SQLite) and lookup-first (a client re-sending known leads, and
    always on PostgreSQL) give the same answers: a known email updates its one contact, a new
    one is created, and the handler switches to whichever the previous batch's mix favours."""
    account = await new_account(db)
    handler = CreateBatchHandler("upsert")

    async def batch(*bodies: dict[str, object]) -> list[service.CreateOutcome]:
        # One handler call, as one group-committed batch.
        with capture_logs() as logs:
            async with db.transaction() as conn:
                outcomes = await handler(conn, [job(account, **body) for body in bodies])
        handler.finished(conn, committed=True)
        # Answered by the batched path itself, not by the one-create-per-job fallback.
        assert logs == []
        assert all(isinstance(o, service.CreateOutcome) for o in outcomes), outcomes
        return outcomes  # type: ignore[return-value]

    assert handler.insert_first
    first = await batch({"email": "a@x.io", "firstName": "Ann"}, {"email": "b@x.io"})
    assert [o.created for o in first] == [True, True]
    assert handler.insert_first  # all new: keep inserting first

    # Known leads sent again, under insert-first: each lands on its contact.
    again = await batch({"email": "A@x.io", "firstName": "Anna"}, {"email": "b@x.io"})
    assert [o.created for o in again] == [False, False]
    assert [o.contact.id for o in again] == [o.contact.id for o in first]
    assert again[0].contact.first_name == "Anna"
    assert not handler.insert_first  # mostly known: the next batch looks up first

    mixed = await batch({"email": "a@x.io", "lastName": "Lee"}, {"email": "c@x.io"})
    assert [o.created for o in mixed] == [False, True]
    assert mixed[0].contact.id == first[0].contact.id
    assert mixed[0].contact.first_name == "Anna" and mixed[0].contact.last_name == "Lee"
    assert handler.insert_first  # half new: insert first again
    async with db.read() as conn:
        emails = (await conn.execute(sa.select(contact_table.c.email_key))).scalars().all()
    assert sorted(emails) == ["a@x.io", "b@x.io", "c@x.io"]


async def test_a_batch_and_a_writer_that_locks_first_do_not_deadlock(
    database_url: str, db: Database
) -> None:
    """PostgreSQL: the bulk endpoint, the import and PUT lock existing contacts, then insert.
    A create batch holding a new email that such a writer also inserts, while waiting for a
    contact that writer has locked, would deadlock if it inserted before it locked; it looks
    up (and locks) first, so the writer's insert goes through and the batch then finds the
    contact that writer made."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one write transaction at a time: no lock cycle can form")
    account = await new_account(db)
    handler = CreateBatchHandler("upsert")
    async with db.transaction() as conn:
        await handler(conn, [job(account, email="known@x.io")])
    handler.finished(conn, committed=True)
    assert handler.insert_first  # what the batch would do on SQLite

    other = Database(database_url)
    items = [
        bulk.BulkItem(0, service.parse_contact_create({"email": "known@x.io", "lastName": "A"})),
        bulk.BulkItem(1, service.parse_contact_create({"email": "new@x.io", "lastName": "A"})),
    ]
    try:
        with capture_logs() as logs:
            async with other.transaction() as writer:
                # The locking writer takes the known contact's row lock...
                locked = sa.text("SELECT id FROM contact WHERE email_key = 'known@x.io' FOR UPDATE")
                await writer.execute(locked)

                async def batch() -> list[object]:
                    async with db.transaction() as conn:
                        jobs = [
                            job(account, email="new@x.io", firstName="B"),
                            job(account, email="known@x.io", firstName="B"),
                        ]
                        return await handler(conn, jobs)  # type: ignore[return-value]

                batched = asyncio.create_task(batch())
                await until_a_writer_waits(db)  # the batch, on that lock
                # ...then inserts the email the batch creates too (PostgreSQL breaks a
                # deadlock after 1 s by failing one side: here, or the batch).
                upserter = bulk.BulkUpserter(
                    account.account_id, account.user_id, duplicate_email="upsert"
                )
                results = await asyncio.wait_for(upserter.upsert(writer, items, utcnow()), 5)
            outcomes = await asyncio.wait_for(batched, 5)
    finally:
        await other.dispose()
    assert [r.outcome for r in results] == ["updated", "created"]
    assert logs == []  # the batch was answered by its batched path, not the fallback
    assert [getattr(o, "created", None) for o in outcomes] == [False, False]
    new, known = (o.contact for o in outcomes)  # type: ignore[attr-defined]
    assert (new.first_name, new.last_name) == ("B", "A")  # the writer's contact, then ours
    assert (known.first_name, known.last_name) == ("B", "A")
    async with db.read() as conn:
        emails = (await conn.execute(sa.select(contact_table.c.email_key))).scalars().all()
    assert sorted(emails) == ["known@x.io", "new@x.io"]


async def test_writers_lock_and_insert_in_email_order(database_url: str, db: Database) -> None:
    """PostgreSQL: whatever order a batch names emails in, it locks known contacts and inserts
    new ones in email order, so two writers holding the same emails can never each hold one
    the other waits for. Each time, the batch meets y@ held elsewhere: it must wait there
    holding nothing, so that z@ stays free for anyone."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one write transaction at a time: there are no row locks")
    account = await new_account(db)
    handler = CreateBatchHandler("upsert")
    other, probe_db = Database(database_url), Database(database_url)

    async def z_stays_free(holder_sql: str, probe_sql: str, write: Any) -> None:
        async with other.transaction() as holder:
            await holder.execute(sa.text(holder_sql))  # y@ held elsewhere
            waiting = asyncio.create_task(write())
            await until_a_writer_waits(db)
            assert not waiting.done()  # the batch waits for y@...
            with pytest.raises(RolledBack):
                async with probe_db.transaction() as probe:  # ...and holds no z@ meanwhile
                    await probe.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
                    await probe.execute(sa.text(probe_sql))
                    raise RolledBack
        await asyncio.wait_for(waiting, 5)

    # Known contacts: created z@ first, so that a scan in table order meets z@ before y@.
    for email in ("z@x.io", "y@x.io"):
        async with db.transaction() as conn:
            await handler(conn, [job(account, email=email)])

    async def lookup() -> None:
        async with db.transaction() as conn:
            # Force the plan a large account may get (a hash join over a table scan): the
            # lock order must not depend on the plan.
            await conn.execute(sa.text("SET LOCAL enable_indexscan = off"))
            await conn.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
            await bulk_repository.find_live_by_email_keys(
                conn, account.account_id, ["z@x.io", "y@x.io"]
            )

    await z_stays_free(
        "SELECT id FROM contact WHERE email_key = 'y@x.io' FOR UPDATE",
        "SELECT id FROM contact WHERE email_key = 'z@x.io' FOR UPDATE",
        lookup,
    )

    # New contacts: y@ is being inserted, uncommitted, by another writer.
    async with db.transaction() as conn:
        await conn.execute(sa.text("UPDATE contact SET deleted_at = now()"))

    async def insert() -> None:
        async with db.transaction() as conn:
            await handler(conn, [job(account, email="z@x.io"), job(account, email="y@x.io")])

    other_insert = (
        "INSERT INTO contact (account_id, user_id, email, email_key, status, preview_id,"
        " blocked_by_recaptcha, joined_time, tracking, created_at, updated_at)"
        " SELECT account_id, id, '{e}', '{e}', 'POTENTIAL', '{p}', false, now(), '{{}}',"
        f" now(), now() FROM app_user WHERE account_id = {account.account_id}"
    )
    try:
        await z_stays_free(
            other_insert.format(e="y@x.io", p="contact_probe_y"),
            other_insert.format(e="z@x.io", p="contact_probe_z"),
            insert,
        )
    finally:
        await other.dispose()
        await probe_db.dispose()


async def test_under_reject_a_batch_of_known_emails_turns_to_lookup_first(db: Database) -> None:
    """CONTACTS_API_DUPLICATE_EMAIL=reject: a known email is refused (409), and counts as a
    match, so a client re-sending known leads sends the next batch back to lookup-first."""
    account = await new_account(db)
    handler = CreateBatchHandler("reject")
    for expect_created in (True, False):
        async with db.transaction() as conn:
            (outcome,) = await handler(conn, [job(account, email="a@x.io")])
        handler.finished(conn, committed=True)
        if expect_created:
            assert isinstance(outcome, service.CreateOutcome) and outcome.created
            assert handler.insert_first
        else:
            assert isinstance(outcome, Conflict)
            assert not handler.insert_first


# The backend inserting this email kills itself, as an operator's pg_terminate_backend or a
# PostgreSQL restart would kill it in the middle of a batch.
CUT = "cut@x.test"
CUT_CONNECTION = (
    [
        "CREATE FUNCTION cut_connection() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF NEW.email_key = '{CUT}' THEN PERFORM pg_terminate_backend(pg_backend_pid());"
        " END IF; RETURN NEW; END $$",
        "CREATE TRIGGER cut_connection BEFORE INSERT ON contact"
        " FOR EACH ROW EXECUTE FUNCTION cut_connection()",
    ],
    ["DROP TRIGGER cut_connection ON contact", "DROP FUNCTION cut_connection()"],
)


async def test_a_connection_lost_mid_batch_is_503_and_the_next_create_works(
    database_url: str, db: Database, client: Any
) -> None:
    """The batch rolled back to its savepoint on the dead connection: SQLAlchemy's
    PendingRollbackError, and every create of the batch answered 500 with a traceback
    (found by a reviewer cutting PostgreSQL's connections under load)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's backends; SQLite's file has no connection to lose")
    account = await new_account(db)
    create, drop = CUT_CONNECTION
    async with db.transaction() as conn:
        for statement in create:
            await conn.exec_driver_sql(statement)
    try:
        with capture_logs() as logs:
            cut = await client.post("/v1/contacts", json={"email": CUT}, headers=account.headers)
        assert cut.status_code == 503, cut.text
        assert [e for e in logs if e["log_level"] == "error"] == []  # no traceback
        after = await client.post(
            "/v1/contacts", json={"email": "after@x.test"}, headers=account.headers
        )
        assert after.status_code == 201, after.text
    finally:
        async with db.transaction() as conn:
            for statement in drop:
                await conn.exec_driver_sql(statement)


async def test_a_batch_stamps_its_contacts_no_earlier_than_any_request_arrived(
    db: Database,
) -> None:
    """A batch once stamped its contacts with its first request's arrival: one that waited its
    turn got an updatedAt before a later request of its own client had been sent (another
    server had meanwhile answered with a later time; found by a scale-out reviewer)."""
    account = await new_account(db)
    first, later = job(account, email="first@x.io"), job(account, email="later@x.io")
    later = CreateJob(later.principal, later.data, first.now + timedelta(milliseconds=100))
    handler = CreateBatchHandler("upsert")
    async with db.transaction() as conn:
        outcomes = await handler(conn, [first, later])
    stamps = [o.contact.updated_at for o in outcomes]  # type: ignore[union-attr]
    assert stamps == [later.now, later.now]
    async with db.read() as conn:
        stored = (await conn.execute(sa.select(contact_table.c.updated_at))).scalars().all()
    assert [s.replace(tzinfo=None) for s in stored] == [later.now.replace(tzinfo=None)] * 2
