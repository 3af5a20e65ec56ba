"""Secret rotation: every secret a rotation replaces keeps signing for 24 hours.

The current secret is `secret`; the one it replaced is `previous_secret` (until
`previous_secret_expires_at`); secrets replaced before that and still within their day are in
`earlier_secrets` (migration 0008), newest first, as [{"secret", "expiresAt"}]. A delivery
carries one signature per secret still signing (Standard Webhooks allows several), so a
receiver that has not yet switched keeps verifying, however many rotations a day brings, up
to MAX_REPLACED of them: past that, the oldest stops signing at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from contacts_api.webhooks.signing import new_secret

OVERLAP = timedelta(hours=24)
MAX_REPLACED = 4  # replaced secrets that may sign beside the current one


def replaced_secrets(endpoint: Any, now: datetime) -> list[tuple[str, datetime]]:
    """The replaced secrets still signing at `now`, newest first, with when each stops."""
    found: list[tuple[str, datetime]] = []
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        found.append((endpoint.previous_secret, expires))
    for earlier in endpoint.earlier_secrets or []:
        until = datetime.fromisoformat(earlier["expiresAt"])
        if until > now:
            found.append((earlier["secret"], until))
    return found


def signing_secrets(endpoint: Any, now: datetime) -> list[str]:
    """The current secret, then every replaced one still within its day."""
    return [endpoint.secret, *(secret for secret, _ in replaced_secrets(endpoint, now))]


def rotated(endpoint: Any, now: datetime) -> dict[str, Any]:
    """The endpoint's columns after a rotation at `now`: a new secret, the current one
    replaced (signing for OVERLAP more), the replaced ones still signing kept."""
    still = replaced_secrets(endpoint, now)[: MAX_REPLACED - 1]
    return {
        "secret": new_secret(),
        "previous_secret": endpoint.secret,
        "previous_secret_expires_at": now + OVERLAP,
        "earlier_secrets": [
            {"secret": secret, "expiresAt": until.isoformat()} for secret, until in still
        ]
        or None,
    }
