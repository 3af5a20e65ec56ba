"""POST /v1/contacts under group commit: the creates queued meanwhile become one bulk upsert.

Per-create SQL cost ~6 statements, each a round trip (PostgreSQL) or a call into SQLite;
a batch costs a handful of statements whatever its size (see contacts/bulk.py), with the very
rule functions of one create. Jobs are grouped by account and user; each group gets a fresh
BulkUpserter, sharing the handler's KnownIds (tag and event ids proven by earlier commits).
Should the batched SQL fail unexpectedly, the batch falls back to one create per job, each in
its own SAVEPOINT, so one bad job cannot fail the others.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.accounts.schemas import Principal
from contacts_api.contacts import bulk, service
from contacts_api.contacts.schemas import ContactCreate
from contacts_api.errors import Conflict
from contacts_api.http import metrics
from contacts_api.settings import DuplicateEmailMode
from contacts_api.storage import retry
from contacts_api.storage.outage import log_failure, unavailable_cause

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CreateJob:
    principal: Principal
    data: ContactCreate
    now: datetime


class CreateBatchHandler:
    """The GroupCommitter handler for creates, for one duplicate-email mode."""

    def __init__(
        self,
        duplicate_email: DuplicateEmailMode,
        record_change: bulk.ChangeRecorder | None = None,
        on_created: Callable[[int], None] | None = None,
    ) -> None:
        self.duplicate_email = duplicate_email
        self.record_change = record_change
        self.on_created = on_created  # told how many contacts each committed batch created
        self._created: dict[int, int] = {}  # by id(conn)
        # Shared across batches; the GroupCommitter calls `finished` after each batch.
        self.known = bulk.KnownIds()
        self._pending_tags: dict[int, dict[tuple[int, str], int]] = {}  # by id(conn)
        # SQLite only: leads are mostly new contacts, so insert first and look up only the
        # emails that turn out taken, one statement fewer a batch. Should most of a batch's
        # creates have matched existing contacts (a client re-sending the same leads), the
        # next batch looks up first again, as inserting them would be a wasted statement.
        # Not on PostgreSQL: there the lookup locks the existing rows (FOR UPDATE) before the
        # insert, as the bulk endpoint, the import and PUT do; a batch that inserted first
        # and locked second could deadlock with any of them (each waiting on a row the other
        # holds). SQLite's writers run one transaction at a time, so no such cycle can form.
        self.insert_first = True

    def finished(self, conn: AsyncConnection, committed: bool) -> None:
        """A batch's transaction ended (GroupCommitter's after_batch): what it created is
        known once it committed, forgotten otherwise."""
        pending = self._pending_tags.pop(id(conn), {})
        created = self._created.pop(id(conn), 0)
        if committed:
            self.known.promote(pending)
            if created and self.on_created is not None:
                self.on_created(created)

    async def __call__(
        self, conn: AsyncConnection, jobs: list[CreateJob]
    ) -> list[service.CreateOutcome | Exception]:
        metrics.COMMIT_BATCH_SIZE.observe(len(jobs))
        pending = self._pending_tags[id(conn)] = {}
        # The savepoint as plain SQL: SQLAlchemy's begin_nested() compiles a fresh SAVEPOINT
        # clause each time (~4 % of a loaded worker's samples); this runs once per batch.
        await conn.exec_driver_sql("SAVEPOINT create_batch")
        for attempt in range(1, retry.ATTEMPTS + 1):
            try:
                outcomes = await self._batched(conn, jobs, pending)
                break
            except Exception as exc:
                if unavailable_cause(exc) is not None:
                    # The connection is gone (PostgreSQL restarted, its backend killed): so is
                    # the transaction, with nothing to roll back to. Its rollback raised
                    # PendingRollbackError, and every create of the batch answered 500, not 503.
                    raise
                await conn.exec_driver_sql("ROLLBACK TO SAVEPOINT create_batch")
                pending.clear()  # the tags it created were rolled back with the savepoint
                if retry.is_retryable(exc) and attempt < retry.ATTEMPTS:
                    # A deadlock's victim (PostgreSQL): its locks went with the rollback, so
                    # the other writer goes on, and the same batch runs again after it.
                    await retry.before_retry(exc, attempt, "create batch")
                    continue
                log_failure(log, exc, "batched create failed; retrying one by one", jobs=len(jobs))
                outcomes = [await self._one(conn, job) for job in jobs]
                break
        # No RELEASE SAVEPOINT on success: the batch's COMMIT follows at once and releases it,
        # and a RELEASE would be one more round trip to PostgreSQL (or statement on SQLite).
        created = sum(1 for o in outcomes if isinstance(o, service.CreateOutcome) and o.created)
        matched = sum(
            1
            for o in outcomes
            if isinstance(o, Conflict)  # an existing email under `reject`
            or (isinstance(o, service.CreateOutcome) and not o.created)
        )
        self._created[id(conn)] = created
        self.insert_first = created >= matched
        return outcomes

    async def _batched(
        self,
        conn: AsyncConnection,
        jobs: list[CreateJob],
        pending_tags: dict[tuple[int, str], int],
    ) -> list[service.CreateOutcome | Exception]:
        by_owner: dict[tuple[int, int], list[int]] = defaultdict(list)
        for position, job in enumerate(jobs):
            by_owner[(job.principal.account_id, job.principal.user_id)].append(position)
        results: dict[int, bulk.ItemResult] = {}
        for (account_id, user_id), positions in by_owner.items():
            upserter = bulk.BulkUpserter(
                account_id,
                user_id,
                duplicate_email=self.duplicate_email,
                record_change=self.record_change,
                known=self.known,
                pending_tags=pending_tags,
                insert_first=self.insert_first and conn.dialect.name == "sqlite",
            )
            items = [bulk.BulkItem(p, jobs[p].data) for p in positions]
            # The latest arrival's time: a contact's updatedAt is never before the request
            # that set it arrived (the first arrival's, a batch waiting its turn stamped a
            # request sent after another server had answered a later time).
            now = max(jobs[p].now for p in positions)
            for result in await upserter.upsert(conn, items, now):
                results[result.index] = result
        outcomes: list[service.CreateOutcome | Exception] = []
        for position in range(len(jobs)):
            result = results[position]
            if result.error is not None or result.contact is None:
                outcomes.append(result.error or RuntimeError("create produced no contact"))
                continue
            created = result.outcome == "created"
            outcomes.append(service.CreateOutcome(result.contact, created, changed=()))
        return outcomes

    async def _one(
        self, conn: AsyncConnection, job: CreateJob
    ) -> service.CreateOutcome | Exception:
        for attempt in range(1, retry.ATTEMPTS):
            outcome = await self._one_attempt(conn, job)
            if not (isinstance(outcome, Exception) and retry.is_retryable(outcome)):
                return outcome
            await retry.before_retry(outcome, attempt, "create")
        return await self._one_attempt(conn, job)

    async def _one_attempt(
        self, conn: AsyncConnection, job: CreateJob
    ) -> service.CreateOutcome | Exception:
        try:
            async with conn.begin_nested():
                outcome = await service.create_contact(
                    conn, job.principal, job.data, duplicate_email=self.duplicate_email, now=job.now
                )
                if self.record_change is not None and (outcome.created or outcome.changed):
                    change = bulk.ContactChange(
                        outcome.contact.id, outcome.created, outcome.changed
                    )
                    await self.record_change(conn, job.principal.account_id, [change], job.now)
                return outcome
        except Exception as exc:
            return exc
