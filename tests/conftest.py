"""Fixtures: a real database per test (SQLite file, and PostgreSQL when configured), the app
built with create_app(settings), and an HTTP client speaking to it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import structlog
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.app import create_app
from contacts_api.settings import Settings
from contacts_api.storage import migrate
from contacts_api.storage.engine import Database
from contacts_api.storage.models import Base
from tests.services import postgres_url


@pytest.fixture(autouse=True, scope="session")
def _loggers_never_cached() -> Iterator[None]:
    """configure_logging (run in this process by tests of the CLI and of log output) has each
    logger keep its processors from its first use, for speed: a logger first used after it
    would keep them for the rest of the run, out of capture_logs' reach, and a test that
    captures its lines would pass or fail by the order the tests ran in."""
    configure = structlog.configure

    def uncached(*args: object, **kwargs: object) -> None:
        configure(*args, **{**kwargs, "cache_logger_on_first_use": False})  # type: ignore[arg-type]

    structlog.configure = uncached  # type: ignore[assignment]
    yield
    structlog.configure = configure


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_migrated() -> str:
    url = postgres_url()
    migrate.upgrade(url)
    return url


def _truncate_all(url: str) -> None:
    engine = migrate.sync_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path
) -> Iterator[str]:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "contacts.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_migrated")
    _truncate_all(url)
    yield url


def make_settings(database_url: str, **overrides: object) -> Settings:
    # Tests send bursts (concurrent upserts...) that the 20/1 default would cut short; the
    # rate-limit tests set their own limits.
    overrides.setdefault("rate_limit", "1000000/1")
    # Tests run the webhook dispatcher themselves (tests/webhooks), not inside every app.
    overrides.setdefault("webhooks_dispatch_in_server", False)
    return Settings(_env_file=None, database_url=database_url, **overrides)  # type: ignore[call-arg]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """The test's own handle on the database (the app's engine lives on the app's loop)."""
    database = Database(settings.database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client
