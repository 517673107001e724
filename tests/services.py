"""PostgreSQL and Redis for the tests, as provided by `scripts/testenv.py` (`make test`).

testenv.py exports FAREGATE_TEST_PG_ADMIN_URL (a server where tests may create and drop their
own databases) and FAREGATE_TEST_REDIS_URL. When one is missing or unreachable, the tests that
need it are skipped, or fail when CI is true/1: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

PG_ENV = "FAREGATE_TEST_PG_ADMIN_URL"
REDIS_ENV = "FAREGATE_TEST_REDIS_URL"
DB_PREFIX = "faregate_t_"

# Skip reasons start with these, so the summary can count them.
PG_MISSING = "PostgreSQL not available"
REDIS_MISSING = "Redis not available"
HINTS = {
    PG_MISSING: f"set {PG_ENV} or run via make test",
    REDIS_MISSING: f"set {REDIS_ENV} or run via make test",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def unavailable(what: str, detail: str) -> None:
    """Skip the test, or fail it under CI."""
    reason = f"{what}: {detail} ({HINTS[what]})"
    if in_ci():
        pytest.fail(f"{reason} [CI: not skipping]", pytrace=False)
    pytest.skip(reason)


# --- PostgreSQL ---------------------------------------------------------------------------------

def libpq_url(url: str) -> str:
    """postgresql+psycopg://... (SQLAlchemy) -> postgresql://... (psycopg)."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def sqlalchemy_url(url: str) -> str:
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", url)


def with_dbname(url: str, dbname: str) -> str:
    """The same server URL pointing at another database (query string kept)."""
    m = re.match(r"^([^?]*?://[^/?]*)(/[^?]*)?(\?.*)?$", url)
    if m is None:
        raise ValueError(f"not a database URL: {url}")
    return f"{m.group(1)}/{dbname}{m.group(3) or ''}"


def check_pg_admin_url() -> str:
    url = os.environ.get(PG_ENV, "").strip()
    if not url:
        unavailable(PG_MISSING, f"{PG_ENV} is not set")
    url = libpq_url(url)
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        unavailable(PG_MISSING, f"cannot connect with {PG_ENV}: {str(e).strip()}")
    return url


def create_database(admin_url: str) -> str:
    """CREATE DATABASE faregate_t_<random>; returns its name."""
    import psycopg

    name = DB_PREFIX + secrets.token_hex(6)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database_factory(admin_url: str) -> Iterator[Callable[[], str]]:
    """Yields make() -> URL (postgresql+psycopg://) of a new empty database; drops them all."""
    names: list[str] = []

    def make() -> str:
        names.append(create_database(admin_url))
        return sqlalchemy_url(with_dbname(admin_url, names[-1]))

    try:
        yield make
    finally:
        for name in names:
            drop_database(admin_url, name)


# --- Redis --------------------------------------------------------------------------------------

def check_redis_url() -> str:
    url = os.environ.get(REDIS_ENV, "").strip()
    if not url:
        unavailable(REDIS_MISSING, f"{REDIS_ENV} is not set")
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        with client:
            client.ping()
    except redis.RedisError as e:
        unavailable(REDIS_MISSING, f"cannot connect with {REDIS_ENV}: {e}")
    return url


def worker_redis_url(url: str) -> str:
    """Under pytest-xdist each worker gets its own Redis database (gw0 the configured one, gw1
    the one below it, ...), so one worker's FLUSHDB never wipes another's keys."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    db = base - int(worker[2:])
    if db < 0:
        db += 16
    return urlunsplit(parts._replace(path=f"/{db}"))


def flush_redis(url: str) -> None:
    import redis

    with redis.Redis.from_url(url, socket_timeout=10) as client:
        client.flushdb()


# --- reporting ----------------------------------------------------------------------------------

def missing_service_summary(terminalreporter: pytest.TerminalReporter) -> list[str]:
    """Loud lines for the tests that were skipped because a service was missing."""
    counts = dict.fromkeys(HINTS, 0)
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else ""
        reason = str(reason).removeprefix("Skipped: ")
        for what in counts:
            if reason.startswith(what):
                counts[what] += 1
    return [f"!!! {n} test{'s' if n != 1 else ''} SKIPPED: {what} — {HINTS[what]}"
            for what, n in counts.items() if n]
