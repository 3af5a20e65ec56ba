"""UTM attribution: last touch in `utm_*`, first touch in `first_utm_*`, the rest as pairs."""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit

STANDARD_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# [choice] A contact keeps at most this many other keys (utmKey_N/utmValue_N): every touch may
# bring new ones, and without a bound a client could grow one contact's tracking (and every
# webhook body about it) without end. Keys it already holds keep taking new values.
MAX_OTHER_KEYS = 50
# C0 and C1 control characters (NUL among them: PostgreSQL JSON cannot hold it).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs with a non-empty key and no control character in key or value; others drop."""
    return [(k, v) for k, v in pairs if k and not _CONTROL.search(k) and not _CONTROL.search(v)]


def utm_pairs(utm: str | None, referrer_url: str | None) -> list[tuple[str, str]]:
    """Parameters seen on one touch: `utm_*` from the referrer's query, then the `utm` string.

    One value per key, the later one, so an explicit `utm` value beats the same key in the
    referrer URL, for the first touch's `first_*` as for the last touch. Keys keep the order
    they first appear in. `+` decodes to a space, as in any query string. [choice] A pair
    whose key or value decodes to a control character (`%00`, `%0A`, ...) is dropped.
    `referrer_url` is one that validation accepted (`validation.is_absolute_uri`).
    """
    pairs: list[tuple[str, str]] = []
    if referrer_url:
        query = urlsplit(referrer_url).query
        pairs.extend((k, v) for k, v in parse_qsl(query) if k.startswith("utm_"))
    if utm:
        pairs.extend(parse_qsl(utm.removeprefix("?")))
    return list(dict(clean_pairs(pairs)).items())


@lru_cache(maxsize=8192)
def cached_utm_pairs(utm: str | None, referrer_url: str | None) -> list[tuple[str, str]]:
    """`utm_pairs`, memoised: an import repeats a few campaign strings many times over.

    The list is shared between rows, so callers never mutate it (they concatenate).
    """
    return utm_pairs(utm, referrer_url)


def merge_tracking(current: dict[str, str], pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The tracking object after one more touch; `current` is left untouched."""
    result = dict(current)
    other_slots = {
        value: key.removeprefix("utmKey_")
        for key, value in current.items()
        if key.startswith("utmKey_")
    }
    for key, value in pairs:
        if key in STANDARD_KEYS:
            result[key] = value
            result.setdefault(f"first_{key}", value)
            continue
        slot = other_slots.get(key)
        if slot is None:
            if len(other_slots) >= MAX_OTHER_KEYS:
                continue
            slot = str(len(other_slots) + 1)
            other_slots[key] = slot
            result[f"utmKey_{slot}"] = key
        result[f"utmValue_{slot}"] = value
    return result


def pairs_from_tracking(
    tracking: dict[str, str],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A stored tracking object as (first-touch pairs, last-touch pairs).

    Merging the first pairs, then any new touch, then the last pairs onto a contact rebuilds
    the same object on a new contact and changes nothing on the one it came from: this is how
    an export is imported back with its attribution intact.
    """
    first = [
        (key.removeprefix("first_"), value)
        for key, value in tracking.items()
        if key.startswith("first_") and key.removeprefix("first_") in STANDARD_KEYS
    ]
    last = [(key, value) for key, value in tracking.items() if key in STANDARD_KEYS]
    slots = sorted(
        (int(key.removeprefix("utmKey_")), value)
        for key, value in tracking.items()
        if key.startswith("utmKey_") and key.removeprefix("utmKey_").isdigit()
    )
    last.extend(
        (name, tracking[f"utmValue_{slot}"])
        for slot, name in slots
        if f"utmValue_{slot}" in tracking
    )
    return clean_pairs(first), clean_pairs(last)
