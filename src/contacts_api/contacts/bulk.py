"""Bulk upsert: many validated contacts per transaction, with exactly the rules of one create.

The per-row path (`service.create_contact`) costs several round trips a row; here a batch costs
a handful of statements: tags and events are resolved once per distinct value (and cached
across batches), live contacts are fetched by email in one query, rows are merged in Python
with the very rule functions of `service` (`given_columns`, `new_contact_values`,
`changed_columns`), then written with one executemany insert and one executemany update.
The caller (CLI, route) owns the transaction: one per batch, so an interrupted import keeps
every committed batch and a re-run completes the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.contacts import bulk_repository as bulk_repo
from contacts_api.contacts import service
from contacts_api.contacts.repository import ContactSnapshot
from contacts_api.contacts.schemas import ContactCreate
from contacts_api.contacts.tracking import cached_utm_pairs, pairs_from_tracking
from contacts_api.errors import AppError, Conflict, ValidationFailed
from contacts_api.events.repository import find_event_id
from contacts_api.settings import DuplicateEmailMode
from contacts_api.storage.retry import RaceLost
from contacts_api.timeutil import after

Outcome = Literal["created", "updated", "unchanged", "failed"]


@dataclass(slots=True)
class BulkItem:
    """One validated input: `index` is the caller's numbering (file row, array index)."""

    index: int
    data: ContactCreate
    # Import only: a tracking object as exported, merged back with its first touch intact.
    tracking: dict[str, str] | None = None


@dataclass(slots=True)
class ItemResult:
    """What became of one item; `contact` (the contact as the batch left it) is set unless it
    failed, when the upserter was asked for ids."""

    index: int
    outcome: Outcome
    error: AppError | None = None
    contact: ContactSnapshot | None = None


@dataclass(frozen=True, slots=True)
class ContactChange:
    """A contact a batch created or changed (what a webhook event describes)."""

    contact_id: int
    created: bool
    changed: tuple[str, ...]


# Records what a batch created or changed (the webhook outbox), inside its transaction:
# (conn, account_id, changes, now). Injected by the caller so contacts never import webhooks.
ChangeRecorder = Callable[
    [AsyncConnection, int, Sequence[ContactChange], datetime], Awaitable[object]
]


@dataclass(slots=True)
class _Touch:
    """One item, resolved: the columns it gives and the UTM pairs it brings."""

    item: BulkItem
    columns: dict[str, Any]
    pairs: list[tuple[str, str]]


@dataclass(slots=True)
class _Group:
    """Every touch of one contact within a batch, in input order."""

    email_key: str | None
    phone_key: str | None = None
    touches: list[_Touch] = field(default_factory=list)
    # Per touch, once folded: whether it changed what the touches before it left.
    changed: list[bool] = field(default_factory=list)


class KnownIds:
    """Tag and event ids proven by committed transactions, shared by one process's batches.

    Tags and events are never renamed or deleted, and a lookup by name or link prefix picks the
    oldest match, so an id once committed stays the answer: group-committed creates skip two
    or three statements a batch (~1.2 ms of a 7 ms batch of 32, measured in process on SQLite).
    Ids a batch creates itself (new tags) wait in that batch's own `pending` dict until its
    owner calls `promote(pending)` after the commit, so a rolled-back tag never leaks; an
    unknown event is never remembered, so one created a moment later is found.
    """

    MAX_ENTRIES = 50_000

    def __init__(self) -> None:
        self.tags: dict[tuple[int, str], int] = {}
        self.events: dict[tuple[int, str, Any], int] = {}

    def promote(self, pending: dict[tuple[int, str], int]) -> None:
        """A transaction committed: the tags it created are now known to everyone."""
        if len(self.tags) + len(self.events) > self.MAX_ENTRIES:
            self.tags.clear()
            self.events.clear()
        self.tags.update(pending)


def _outcome(changed: bool) -> Outcome:
    """A touch of a contact that exists (in the database, or by an earlier touch)."""
    return "updated" if changed else "unchanged"


class BulkUpserter:
    """Upserts batches for one account and user; caches tag and event ids across batches."""

    def __init__(
        self,
        account_id: int,
        user_id: int,
        *,
        duplicate_email: DuplicateEmailMode,
        record_change: ChangeRecorder | None = None,
        match_phone_without_email: bool = False,
        want_ids: bool = True,
        known: KnownIds | None = None,
        pending_tags: dict[tuple[int, str], int] | None = None,
        insert_first: bool = False,
    ) -> None:
        self.account_id = account_id
        self.user_id = user_id
        self.duplicate_email = duplicate_email
        self.record_change = record_change
        # Import only (so a re-run creates nothing new): a row without email matches a live
        # contact that has no email either and the same phone number. Not race-proof (no
        # unique index backs it), unlike the email rule; the API never does this.
        self.match_phone = match_phone_without_email and duplicate_email == "upsert"
        # New contacts' ids cost a RETURNING; only webhooks and the batch endpoint need them.
        self.want_ids = want_ids or record_change is not None
        self._tag_ids: dict[str, int] = {}
        self._event_ids: dict[tuple[str, Any], int | None] = {}
        # With `known`: tag ids this batch created, for the owner to promote after commit.
        self.known = known
        self.pending_tags = pending_tags if pending_tags is not None else {}
        # No lookup before the insert: the emails a live contact holds are found afterwards, by
        # the concurrent-create path (SQLite only, see contacts/create_batch.py).
        self.insert_first = insert_first

    def forget_tags(self) -> None:
        """Tag ids cached since the caller's last commit may be gone (their transaction rolled
        back, to be run again): look every tag up anew."""
        self._tag_ids.clear()
        self.pending_tags.clear()

    async def upsert(
        self, conn: AsyncConnection, items: Sequence[BulkItem], now: datetime
    ) -> list[ItemResult]:
        """Upsert a batch inside the caller's transaction; one result per item, input order."""
        results: dict[int, ItemResult] = {}
        # Events first, as the single create does: an item whose event is unknown fails
        # before its tag is created, so it leaves nothing behind.
        event_ids: dict[int, int | None] = {}
        for position, item in enumerate(items):
            event_id = await self._event_id(conn, item.data)
            if isinstance(event_id, AppError):
                results[position] = ItemResult(item.index, "failed", error=event_id)
            else:
                event_ids[position] = event_id
        await self._resolve_tags(conn, [items[p] for p in event_ids], now)
        groups: dict[Any, _Group] = {}
        for position, event_id in event_ids.items():
            item = items[position]
            touch = self._touch(item, event_id)
            email_key = self._email_key(item.data)
            phone_key = None
            if email_key is not None:
                group_key: Any = email_key
            elif self.match_phone and item.data.email is None:
                phone_key = item.data.phoneNumber
                group_key = ("phone", phone_key)
            else:  # no de-duplication key: a contact of its own
                group_key = ("row", position)
            groups.setdefault(group_key, _Group(email_key, phone_key)).touches.append(touch)
        positions = {id(item): position for position, item in enumerate(items)}

        keys = [g.email_key for g in groups.values() if g.email_key is not None]
        existing = {} if self.insert_first else await self._find_live(conn, keys)
        phones = [g.phone_key for g in groups.values() if g.phone_key is not None]
        by_phone = await bulk_repo.find_live_without_email_by_phone(conn, self.account_id, phones)
        new_rows: dict[str, tuple[_Group, dict[str, Any]]] = {}
        updates: list[tuple[_Group, dict[str, Any], tuple[str, ...]]] = []
        for group in groups.values():
            if group.email_key is not None:
                row = existing.get(group.email_key)
            else:
                row = by_phone.get(group.phone_key) if group.phone_key is not None else None
            if row is not None:
                updates.append((group, *self._fold_onto(row._mapping, group, now)))
            else:
                values = self._new_contact(group, now)
                new_rows[values["preview_id"]] = (group, values)

        inserted = await bulk_repo.insert_contacts(
            conn, [v for _, v in new_rows.values()], want_ids=self.want_ids
        )
        lost = [group for preview_id, (group, _) in new_rows.items() if preview_id not in inserted]
        if lost:
            # A live contact holds the email: one that a concurrent create committed after our
            # lookup, or any existing one under insert_first. It is the match.
            winners = await self._find_live(conn, [g.email_key for g in lost if g.email_key])
            for group in lost:
                assert group.email_key is not None
                winner = winners.get(group.email_key)
                if winner is None:  # deleted again since: the email is free (a KeyError, 500)
                    raise RaceLost(group.email_key)
                updates.append((group, *self._fold_onto(winner._mapping, group, now)))
        await bulk_repo.update_contacts(conn, [state for _, state, changed in updates if changed])

        changes: list[ContactChange] = []
        for preview_id, contact_id in inserted.items():
            group, values = new_rows[preview_id]
            snapshot = None
            if contact_id is not None:
                changes.append(ContactChange(contact_id, created=True, changed=()))
                snapshot = ContactSnapshot.of({**values, "id": contact_id})
            for n, touch in enumerate(group.touches):
                outcome: Outcome = "created" if n == 0 else _outcome(group.changed[n])
                self._settle(results, positions, touch, outcome, snapshot)
        for group, state, changed in updates:
            if changed:
                changes.append(ContactChange(state["id"], created=False, changed=changed))
            snapshot = ContactSnapshot.of(state) if self.want_ids else None
            for touch, touch_changed in zip(group.touches, group.changed, strict=True):
                # Touches whose changes the later ones undid leave the contact as it was.
                outcome = _outcome(bool(changed) and touch_changed)
                self._settle(results, positions, touch, outcome, snapshot)
        if self.record_change is not None and changes:
            # Webhooks: the single call site (webhooks.outbox.record_contact_changes).
            await self.record_change(conn, self.account_id, changes, now)
        return [results[position] for position in range(len(items))]

    async def _find_live(self, conn: AsyncConnection, keys: list[str]) -> dict[str, Any]:
        return await bulk_repo.find_live_by_email_keys(conn, self.account_id, keys)

    def _email_key(self, data: ContactCreate) -> str | None:
        if data.email is None or self.duplicate_email == "allow":
            return None
        return data.email.lower()

    def _settle(
        self,
        results: dict[int, ItemResult],
        positions: dict[int, int],
        touch: _Touch,
        outcome: Outcome,
        contact: ContactSnapshot | None,
    ) -> None:
        position = positions[id(touch.item)]
        if self.duplicate_email == "reject" and outcome != "created":
            results[position] = ItemResult(
                touch.item.index, "failed", error=Conflict(service.EMAIL_TAKEN)
            )
        else:
            results[position] = ItemResult(touch.item.index, outcome, contact=contact)

    def _new_contact(self, group: _Group, now: datetime) -> dict[str, Any]:
        """A new contact from its first touch, with the later ones applied as updates."""
        touches = group.touches
        group.changed = [True] + [False] * (len(touches) - 1)
        first = touches[0]
        values = service.new_contact_values(
            account_id=self.account_id,
            user_id=self.user_id,
            email_key=self._email_key(first.item.data),
            columns=first.columns,
            pairs=first.pairs,
            now=now,
        )
        if self.duplicate_email != "reject":
            for n, touch in enumerate(touches[1:], start=1):
                delta = service.changed_columns(values, touch.columns, touch.pairs)
                values.update(delta)
                group.changed[n] = bool(delta)
        return values

    def _fold_onto(
        self, current: Any, group: _Group, now: datetime
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The contact after every touch, and the columns that differ from before (net)."""
        state = dict(current)
        group.changed = [False] * len(group.touches)
        if self.duplicate_email == "reject":
            return state, ()
        for n, touch in enumerate(group.touches):
            delta = service.changed_columns(state, touch.columns, touch.pairs)
            state.update(delta)
            group.changed[n] = bool(delta)
        changed = tuple(c for c in bulk_repo.MUTABLE_COLUMNS if state[c] != current[c])
        if changed:
            state["updated_at"] = after(current["updated_at"], now)  # never before its last
        return state, tuple(service.WIRE_NAME[c] for c in changed)

    async def _resolve_tags(
        self, conn: AsyncConnection, items: Sequence[BulkItem], now: datetime
    ) -> None:
        missing = {i.data.tag for i in items if i.data.tag is not None} - self._tag_ids.keys()
        known = self.known
        if known is not None:
            for name in list(missing):
                tag_id = known.tags.get((self.account_id, name))
                if tag_id is not None:
                    self._tag_ids[name] = tag_id
                    missing.discard(name)
        if missing:
            found = await bulk_repo.tag_ids_for(conn, self.account_id, missing, now)
            self._tag_ids.update(found)
            self.pending_tags.update({(self.account_id, n): i for n, i in found.items()})

    async def _event_id(self, conn: AsyncConnection, data: ContactCreate) -> int | AppError | None:
        """The event the item names (None when it names none), or its "Event not found"."""
        selector = service.event_selector(data)
        if selector is None:
            return None
        wire, kwargs = selector
        cache_key = (wire, next(iter(kwargs.values())))
        if cache_key not in self._event_ids:
            known_key = (self.account_id, *cache_key)
            event_id = self.known.events.get(known_key) if self.known is not None else None
            if event_id is None:
                event_id = await find_event_id(conn, self.account_id, **kwargs)
                if event_id is not None and self.known is not None:
                    self.known.events[known_key] = event_id  # committed: batches make none
            self._event_ids[cache_key] = event_id
        event_id = self._event_ids[cache_key]
        if event_id is None:
            return ValidationFailed(field_errors={wire: [service.EVENT_NOT_FOUND]})
        return event_id

    def _touch(self, item: BulkItem, event_id: int | None) -> _Touch:
        data = item.data
        tag_id = None if data.tag is None else self._tag_ids[data.tag]
        pairs = cached_utm_pairs(data.utm, data.referrerUrl)
        if item.tracking:
            first, last = pairs_from_tracking(item.tracking)
            pairs = first + pairs + last
        columns = service.given_columns(data, event_id=event_id, tag_id=tag_id)
        return _Touch(item, columns, pairs)
