"""The /v1 gate: key -> principal, failed-key throttling, then the account's request budget.

It replaces the bare `provide_principal` dependency of the /v1 router, so it runs exactly where
the account is known and before any handler work. What it decided is left on the request's
`RequestContext` (see http/observability.py), which adds the RateLimit-* headers to whatever
response follows, successes and errors alike.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Request

from contacts_api.accounts import service as accounts
from contacts_api.accounts.schemas import Principal
from contacts_api.errors import RateLimitExceeded, Unauthorized
from contacts_api.http import metrics
from contacts_api.http.auth import provide_principal
from contacts_api.http.body import refuse_announced_overflow
from contacts_api.http.observability import RequestContext
from contacts_api.http.ratelimit import Decision, Limiter
from contacts_api.settings import Rate
from contacts_api.singleflight import SingleFlight
from contacts_api.storage.engine import Database

# An account's override is read from the database at most this often per process, so a
# `contacts-api accounts set-rate-limit` takes effect everywhere within these seconds.
OVERRIDE_TTL_SECONDS = 5.0


class AccountRates:
    """Each account's rate: its override when it has one, else the server default (cached)."""

    def __init__(self, db: Database, default: Rate) -> None:
        self._db = db
        self._default = default
        self._cache: dict[int, tuple[Rate, float]] = {}
        self._loads: SingleFlight[int, Rate] = SingleFlight(OVERRIDE_TTL_SECONDS)

    async def rate_of(self, account_id: int) -> Rate:
        cached = self._cache.get(account_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return await self._loads.run(account_id, lambda: self._load(account_id))

    async def _load(self, account_id: int) -> Rate:
        now = time.monotonic()
        async with self._db.read() as conn:
            override = await accounts.rate_limit_override(conn, account_id)
        rate = override or self._default
        self._cache[account_id] = (rate, now + OVERRIDE_TTL_SECONDS)
        return rate


class Gate:
    """Everything the /v1 dependency needs, built once per application."""

    def __init__(self, limiter: Limiter, rates: AccountRates, auth_fail_rate: Rate) -> None:
        self.limiter = limiter
        self.rates = rates
        self.auth_fail_rate = auth_fail_rate


def client_address(request: Request[Any, Any, Any]) -> str:
    """The peer address (uvicorn has applied X-Forwarded-For from FORWARDED_ALLOW_IPS)."""
    client = request.scope.get("client")
    return str(client[0]) if client else "unknown"


def reject(decision: Decision, reason: str) -> RateLimitExceeded:
    metrics.RATE_LIMITED.labels(reason).inc()
    return RateLimitExceeded(decision.rate, decision.retry_after)


# Where a request already let through (by the idempotency middleware) keeps its principal,
# so the route's dependency neither counts it twice against the budget nor checks the key again.
GATED = "contacts_api.gated_principal"


async def provide_gated_principal(request: Request[Any, Any, Any]) -> Principal:
    """The caller's principal, once its key and its account's budget let the request through."""
    gated = request.scope.get(GATED)
    if isinstance(gated, Principal):
        return gated
    gate: Gate = request.app.state.gate
    context = RequestContext.of(request.scope)
    try:
        principal = await provide_principal(request)
    except Unauthorized:
        # Only failures count, and a valid key is checked before this, so a client behind the
        # same address as a key-guesser keeps working.
        failures = await gate.limiter.hit(
            f"authfail:{client_address(request)}", gate.auth_fail_rate
        )
        if failures is not None and not failures.allowed:
            if context is not None:
                context.rate = failures
            raise reject(failures, "auth_fail") from None
        raise
    rate = await gate.rates.rate_of(principal.account_id)
    route = request.scope.get("path_template") or request.scope["path"]
    decision = await gate.limiter.hit(
        f"rl:{principal.account_id}:{request.method}:{route}:{rate}", rate
    )
    if decision is not None:
        if context is not None:
            context.rate = decision
        if not decision.allowed:
            raise reject(decision, "account")
    refuse_announced_overflow(request)  # after the key and the budget, as a POST's 413
    request.scope[GATED] = principal  # type: ignore[literal-required]
    return principal
