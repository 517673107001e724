"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from faregate.db.engine import create_engine
from faregate.db.migrate import upgrade
from faregate.db.schema import metadata


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


def test_no_drift_between_migrations_and_schema(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # idempotent
    engine = create_engine(database_url, pool_size=1)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []
