"""Outside services for tests: use them when they answer, skip (or fail in CI) when not."""

from __future__ import annotations

import os

import pytest

REQUIRED = os.environ.get("CONTACTS_API_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """Skip with a clear reason, or fail when CONTACTS_API_REQUIRE_SERVICES=1 (as in CI)."""
    if REQUIRED:
        pytest.fail(f"{reason} (CONTACTS_API_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def postgres_url() -> str:
    url = os.environ.get("CONTACTS_API_TEST_DATABASE_URL")
    if not url:
        unavailable(
            "PostgreSQL not configured: set CONTACTS_API_TEST_DATABASE_URL "
            "(make test does so when PostgreSQL answers on 127.0.0.1:5432)"
        )
    assert url is not None
    return url
