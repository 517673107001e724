"""A migrated database (SQLite, or PostgreSQL) with one funded organization."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from faregate.db.engine import create_engine
from faregate.db.migrate import upgrade


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    upgrade(url)
    eng = create_engine(url)
    yield eng
    eng.dispose()
