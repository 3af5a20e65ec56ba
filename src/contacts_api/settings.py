"""Every setting of the server, read once from the environment (prefix CONTACTS_API_) and .env."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from contacts_api.storage.drivers import LIBPQ_ONLY

# `user:password@` up to the last `@` (a password may hold an `@` or a `/`, which the
# drivers then read as part of the host: it must not show either), and a `password=` query
# parameter.
_PASSWORD = re.compile(r"(://[^/:@]*:).*@")
_PASSWORD_PARAMETER = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


def redacted_url(url: str) -> str:
    """A database URL for a message: its password, if any, as `***` (it may not parse)."""
    return _PASSWORD_PARAMETER.sub(r"\1***", _PASSWORD.sub(r"\1***@", url))


def url_problem(url: URL) -> str | None:
    """What makes a database URL of a known scheme unusable, before any connection: each of
    these got through once, to a traceback or to a database nobody meant."""
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
            # In memory, each connection has a database of its own: nothing would persist.
            return (
                "the URL names no file: expected sqlite:///PATH (such as sqlite:///./contacts.db)"
            )
        return None
    # `postgresql://` alone went to libpq's defaults: the socket, and a database named as
    # the operating system's user (the migrations ran there).
    if not url.database and "dbname" not in url.query:
        return "the URL names no database: expected postgresql://USER@HOST:5432/DB"
    if url.port is not None and not 0 < url.port < 65536:
        return "the port is not 1-65535"
    unsupported = sorted(LIBPQ_ONLY.intersection(url.query))
    if unsupported:
        return f"{unsupported[0]} is a libpq parameter the server's driver (asyncpg) cannot take"
    timeout = url.query.get("connect_timeout")
    if timeout is not None and not (isinstance(timeout, str) and timeout.isdigit()):
        return "connect_timeout is not a whole number of seconds"
    return None


class _NameTheDotEnv(logging.Filter):
    """python-dotenv's warning for a line of .env it skips named no file: which .env, where?"""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "python-dotenv could not parse statement starting at line %s":
            where = str(Path(".env").absolute()).replace("%", "%%")  # the message's format
            record.msg = f"warning: {where} line %s is not NAME=VALUE: ignored"
        return True


logging.getLogger("dotenv.main").addFilter(_NameTheDotEnv())


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}  # as the logging module takes


# A rate's bounds: a window's end must be a date the headers can name (a window of 10^11 s
# ended after the year 9999, and every request of the account got a 500), and the budget a
# number the database stores.
MAX_RATE_POINTS = 2**31 - 1
MAX_RATE_WINDOW = 366 * 24 * 3600


class Rate(NamedTuple):
    """A fixed-window budget: `points` requests per `window` seconds."""

    points: int
    window: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        points, sep, window = text.partition("/")
        if not sep:  # `20` was once 20 per second, which for AUTH_FAIL_LIMIT (20/60) was a guess
            raise ValueError(
                f"expected POINTS/SECONDS such as 20/1 (a second) or 20/60 (a minute), got {text!r}"
            )
        try:
            rate = cls(int(points), int(window))
        except ValueError:
            raise ValueError(f"expected POINTS/SECONDS such as 20/1, got {text!r}") from None
        if rate.points < 1 or rate.window < 1:
            raise ValueError(f"points and seconds must be at least 1, got {text!r}")
        if rate.points > MAX_RATE_POINTS or rate.window > MAX_RATE_WINDOW:
            raise ValueError(
                f"points must be at most {MAX_RATE_POINTS} and seconds at most"
                f" {MAX_RATE_WINDOW} (366 days), got {text!r}"
            )
        return rate

    def __str__(self) -> str:
        return f"{self.points}/{self.window}"


# Finite: an infinite timeout or cache time (`inf` parses as a float) is no setting; and a day
# at most (a lease of 1e300 s passed, and the dispatcher crashed on it, delivering nothing).
MAX_SECONDS = 86_400
Positive = Annotated[float, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
DuplicateEmailMode = Literal["upsert", "reject", "allow"]


class Settings(BaseSettings):
    """Server settings; build one and pass it to create_app()."""

    # env_ignore_empty: `CONTACTS_API_X=` (as a .env or a compose file writes "unset") is the
    # default, not a value to refuse.
    model_config = SettingsConfigDict(
        env_prefix="CONTACTS_API_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,
    )

    database_url: str = "sqlite:///./contacts.db"
    redis_url: str | None = None
    # Every Redis key starts with this, so deployments (or test runs) can share one Redis.
    redis_prefix: str = "contacts-api:"
    rate_limit: str = "20/1"
    auth_fail_limit: str = "20/60"
    duplicate_email: DuplicateEmailMode = "upsert"
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    log_format: Literal["console", "json"] | None = None
    log_level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR or CRITICAL, in any case
    access_log: bool = True
    webhooks_allow_private: bool = False
    # Webhook dispatcher: runs inside each `serve` worker unless switched off (tests, or when
    # only `contacts-api webhooks dispatch` processes should deliver).
    webhooks_dispatch_in_server: bool = True
    webhooks_timeout_seconds: Positive = 15.0
    # An endpoint claimed by a dispatcher that died is free again after this long; it must
    # outlast one attempt (the timeout), or two dispatchers could send the same attempt.
    webhooks_lease_seconds: Positive = 30.0
    webhooks_poll_seconds: Positive = 0.5
    # Delivered and given-up messages, with their attempts, are deleted after this many days
    # (webhooks/retention.py); 0 keeps them forever.
    webhooks_retention_days: Annotated[float, Field(ge=0, le=36_500, allow_inf_nan=False)] = 30.0
    max_body_bytes: Annotated[int, Field(ge=1)] = 1024 * 1024
    # A request's head must arrive within this of its first byte, and a body may pause no
    # longer between reads (http/server_protocol.py): else the connection is closed.
    read_timeout_seconds: Positive = 30.0
    # How long an idle kept-alive connection stays open. A client or load balancer that keeps
    # idle connections longer than this (Node's agents 5 s, AWS ALB 60 s) may send a request
    # just as the server closes it: it gets a reset, and a POST is not retried. uvicorn's
    # default, 5 s, lost 17 of 100 creates from a Node agent idle ~5 s; nginx's is 75 s.
    keep_alive_seconds: Positive = 75.0
    # How long a process trusts a verified key before checking it again (revocation delay).
    key_cache_seconds: NonNegative = 2.0  # 0: every request checks its key

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value.startswith("postgres://"):  # as hosting providers hand it out
            value = "postgresql://" + value.removeprefix("postgres://")
        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            backend = None
        except ValueError:  # SQLAlchemy reads the port as a number
            raise ValueError(f"the port is not 1-65535, in {redacted_url(value)!r}") from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(
                f"expected sqlite:///PATH or postgresql://USER@HOST/DB, got {redacted_url(value)!r}"
            )
        problem = url_problem(make_url(value))
        if problem:
            raise ValueError(f"{problem}, in {redacted_url(value)!r}")
        credentials = value.partition("://")[2].partition("?")[0]
        at = credentials.rfind("@")
        if backend == "postgresql" and at != -1 and any(c in credentials[:at] for c in "@/"):
            # The drivers read the rest as the host, and name it in their errors.
            raise ValueError(
                "the password holds a character to write percent-encoded (@ as %40, / as"
                f" %2F), in {redacted_url(value)!r}"
            )
        return value

    @field_validator("rate_limit", "auth_fail_limit")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        Rate.parse(value)
        return value

    # SQLite itself takes `full`; an operator writing `Upsert` or `JSON` means the same.
    @field_validator("duplicate_email", "log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = LOG_LEVEL_ALIASES.get(value.upper(), value.upper())
        if level not in LOG_LEVELS:
            raise ValueError(f"expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {value!r}")
        return level

    @model_validator(mode="after")
    def _lease_outlasts_attempt(self) -> Settings:
        if self.webhooks_lease_seconds <= self.webhooks_timeout_seconds:
            raise ValueError(
                f"CONTACTS_API_WEBHOOKS_LEASE_SECONDS ({self.webhooks_lease_seconds:g}) must"
                " exceed CONTACTS_API_WEBHOOKS_TIMEOUT_SECONDS"
                f" ({self.webhooks_timeout_seconds:g})"
            )
        return self

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "expected redis://HOST:PORT/DB (or rediss://, unix://),"
                f" got {redacted_url(value)!r}"
            )
        if value.startswith("unix://"):
            return value
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 (it raises for a port that is none)
        except ValueError:
            raise ValueError(f"the port is not 1-65535, in {redacted_url(value)!r}") from None
        if not re.fullmatch(r"/?(\d+)?", parts.path):  # redis-py took `/abc` as database 0
            raise ValueError(
                f"the database after the port must be a number, in {redacted_url(value)!r}"
            )
        return value

    @property
    def default_rate(self) -> Rate:
        return Rate.parse(self.rate_limit)

    @property
    def auth_fail_rate(self) -> Rate:
        return Rate.parse(self.auth_fail_limit)
