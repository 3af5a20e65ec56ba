"""The wire's time format, and the memo of recent answers behind it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from contacts_api import timeutil
from contacts_api.timeutil import format_time

PARIS = timezone(timedelta(hours=1))


def test_times_are_utc_with_milliseconds_and_four_digit_years() -> None:
    assert format_time(datetime(2024, 1, 15, 10, 0, 0, 123999, tzinfo=UTC)) == (
        "2024-01-15T10:00:00.123Z"
    )
    assert format_time(datetime(2024, 1, 1, 0, 30, tzinfo=PARIS)) == "2023-12-31T23:30:00.000Z"
    assert format_time(datetime(999, 3, 4, 5, 6, 7, tzinfo=UTC)) == "0999-03-04T05:06:07.000Z"
    assert format_time(None) is None


def test_one_instant_in_two_zones_is_one_answer_whichever_came_first() -> None:
    instant = datetime(2031, 5, 6, 7, 8, 9, 10_000, tzinfo=UTC)
    assert format_time(instant.astimezone(PARIS)) == "2031-05-06T07:08:09.010Z"
    assert format_time(instant) == "2031-05-06T07:08:09.010Z"


def test_the_memo_stays_bounded_and_every_answer_stays_right() -> None:
    start = datetime(2040, 1, 1, tzinfo=UTC)
    times = [start + timedelta(milliseconds=n) for n in range(timeutil._FORMATTED_MAX + 10)]
    first = [format_time(t) for t in times]
    assert len(timeutil._FORMATTED) <= timeutil._FORMATTED_MAX
    assert [format_time(t) for t in times] == first
    assert first[-1] == "2040-01-01T00:00:04.105Z"
