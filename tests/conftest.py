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
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A freshly migrated database: the same test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'faregate.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    upgrade(url)
    eng = create_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a Redis database for this session, flushed before first use."""
    url = services.check_redis_url()
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
