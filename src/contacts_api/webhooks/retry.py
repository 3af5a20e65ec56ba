"""When to try again: exponential backoff with jitter, `Retry-After`, and the 24-hour window."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

FIRST_DELAY = timedelta(seconds=5)
MAX_DELAY = timedelta(hours=1)
JITTER = 0.2  # each delay is stretched or shrunk by up to 20 %, so retries do not stampede
RETRY_WINDOW = timedelta(hours=24)
# delta-seconds: ASCII digits only (str.isdigit also takes "²" and other Unicode digits), and
# at most 9 of them, so the number always fits a timedelta before it is clamped to the window.
_DELTA_SECONDS = re.compile(r"[0-9]{1,9}", re.ASCII)


def backoff(failed_attempts: int, random: Callable[[], float]) -> timedelta:
    """Delay after the n-th failed attempt: 5 s, 10 s, 20 s ... doubling, at most 1 h, ±20 %."""
    exponent = min(max(failed_attempts, 1) - 1, 20)
    base: timedelta = min(FIRST_DELAY * (2**exponent), MAX_DELAY)
    stretch = 1 + JITTER * (2 * random() - 1)
    return base * stretch


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """`Retry-After` as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        delay = timedelta(seconds=int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
            if when.tzinfo is None:
                return None
            delay = when - now
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    # Never sooner than our own first step: `Retry-After: 0` (or a date past) had the message
    # sent again at every poll, twice a second, for a day.
    return min(max(delay, FIRST_DELAY), RETRY_WINDOW)


def next_delay(
    failed_attempts: int, retry_after: str | None, now: datetime, random: Callable[[], float]
) -> timedelta:
    """The receiver's `Retry-After` when it sent one, else our backoff."""
    asked = parse_retry_after(retry_after, now)
    return asked if asked is not None else backoff(failed_attempts, random)
