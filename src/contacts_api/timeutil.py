"""UTC clock and the wire's time format (ISO 8601, milliseconds, `Z`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def after(previous: datetime | None, now: datetime) -> datetime:
    """`now`, or a millisecond after `previous` when `now` has not passed it: a contact's
    `updatedAt` only moves forward. A change stamped before it waited for the contact's lock
    (or with its request's arrival time) committed after one stamped later: the newest
    `updatedAt` was not the newest state, and receivers keeping the newest event kept an
    older one (a concurrency review: 15-18 of 20 racing PUTs)."""
    if previous is None:
        return now
    floor = previous + timedelta(milliseconds=1)
    return now if now >= floor else floor


def utcnow() -> datetime:
    """Now, in UTC, truncated to milliseconds so that what is stored is what is shown."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


# Recent answers of format_time, by instant. A group-commit batch answers every create with the
# same `now` (createdAt, updatedAt) and often one joinedTime; formatting was ~2.7 % of a
# loaded worker's CPU (py-spy), ~2 us a call against ~0.1 us for a hit here. Aware datetimes
# that are the same instant compare (and hash) equal, and format the same, whatever their zone.
_FORMATTED: dict[datetime, str] = {}
_FORMATTED_MAX = 4096


def format_time(value: datetime | None) -> str | None:
    """`2024-01-15T10:00:00.000Z`, or None."""
    if value is None:
        return None
    text = _FORMATTED.get(value)
    if text is None:
        v = value.astimezone(UTC)
        # Explicit widths: strftime's %Y gives "999", not "0999", for years below 1000 (glibc).
        text = (
            f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
            f".{v.microsecond // 1000:03d}Z"
        )
        if value.tzinfo is not None:  # a naive time is local time: not a stable key
            if len(_FORMATTED) >= _FORMATTED_MAX:
                _FORMATTED.clear()
            _FORMATTED[value] = text
    return text


def parse_zulu(text: str) -> datetime:
    """Parse a UTC `Z` time already checked by the joinedTime pattern (seconds optional).

    Fractions longer than microseconds are truncated, not rounded.
    """
    body = text[:-1]
    main, _, fraction = body.partition(".")
    if len(main) == 16:  # YYYY-MM-DDTHH:MM
        main += ":00"
    micro = int((fraction + "000000")[:6]) if fraction else 0
    return datetime.fromisoformat(main).replace(microsecond=micro, tzinfo=UTC)


def parse_iso(text: str) -> datetime:
    """ISO 8601 with `Z` or an offset, as the CLI accepts; naive input is refused."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z or an offset such as +00:00")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is a time before the year 1 in UTC
        raise ValueError(f"{text!r} is outside the years 1 to 9999 in UTC") from None
