"""Generic fixtures for every test: PostgreSQL and Redis (see tests/services.py).

Subfolders add their own conftest.py for everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from faregate.db.engine import create_engine
from faregate.db.migrate import upgrade
from faregate.db.runner import Database
from tests import services

PG_FIXTURES = {"pg_admin_url", "pg_database", "make_pg_database"}
REDIS_FIXTURES = {"redis_url"}


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """postgresql:// URL of a server where tests may create and drop databases."""
    return services.check_pg_admin_url()


@pytest.fixture
def make_pg_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Factory: each call gives the URL (postgresql+psycopg://) of a new empty database."""
    with services.database_factory(pg_admin_url) as make:
        yield make


@pytest.fixture
def pg_database(make_pg_database: Callable[[], str]) -> str:
    """URL (postgresql+psycopg://) of a fresh empty database, dropped after the test."""
    return make_pg_database()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a new empty (not migrated) database: the same test runs on SQLite and on
    PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'faregate.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


def _migrated(url: str) -> Iterator[Engine]:
    upgrade(url)
    eng = create_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A freshly migrated database: the same test runs on SQLite and on PostgreSQL."""
    yield from _migrated(database_url)


@pytest.fixture
def pg_engine(pg_database: str) -> Iterator[Engine]:
    """A freshly migrated PostgreSQL database, for what only PostgreSQL has."""
    yield from _migrated(pg_database)


@pytest.fixture
def db_threads() -> int:
    """How many threads the `db` runner has (a suite's conftest may override this)."""
    return 2


@pytest.fixture
def db(engine: Engine, db_threads: int) -> Iterator[Database]:
    """The same database behind the async runner the API uses (one transaction per call)."""
    database = Database(engine, threads=db_threads)
    yield database
    database.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a Redis database for this session, flushed before first use."""
    url = services.worker_redis_url(services.check_redis_url())
    services.flush_redis(url)
    return url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the services they use, so `-m "not postgres"` etc. work."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & PG_FIXTURES:
            item.add_marker(pytest.mark.postgres)
        if names & REDIS_FIXTURES:
            item.add_marker(pytest.mark.redis)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = services.missing_service_summary(terminalreporter)
    if lines:
        terminalreporter.write_sep("!", "SERVICES MISSING", red=True, bold=True)
        for line in lines:
            terminalreporter.write_line(line, red=True, bold=True)
