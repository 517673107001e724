"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL; the
server refuses to start on a database without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from faregate.db.engine import create_engine
from faregate.db.migrate import SchemaNotReady, alembic_config, check_schema, upgrade
from faregate.db.schema import metadata
from tests.harness import free_port


def test_no_drift_between_migrations_and_schema(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # idempotent
    engine = create_engine(database_url, pool_size=1)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def _head_and_previous(url: str) -> tuple[str, str]:
    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_revision("head")
    assert head is not None and isinstance(head.down_revision, str)
    return head.revision, head.down_revision


def test_the_server_checks_the_schema_before_it_starts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fg.db"
    engine = create_engine(url, pool_size=1)
    try:
        with pytest.raises(SchemaNotReady, match="no Faregate schema: run `faregate db upgrade`"):
            check_schema(engine, url)
        head, previous = _head_and_previous(url)
        upgrade(url, previous)
        with pytest.raises(SchemaNotReady, match=f"revision {previous}, older than this "
                                                 f"release's {head}"):
            check_schema(engine, url)
        upgrade(url)
        assert check_schema(engine, url) is None
        # A newer release migrated the database (a rolling upgrade): start, with a warning.
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dfeed0001'")
        assert "newer than this release" in (check_schema(engine, url) or "")
    finally:
        engine.dispose()


def test_serve_on_an_empty_database_says_what_to_do(tmp_path: Path) -> None:
    env = {**os.environ, "FAREGATE_DATA_DIR": str(tmp_path), "FAREGATE_PORT": str(free_port()),
           "FAREGATE_DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"}
    out = subprocess.run([sys.executable, "-m", "faregate.server"], env=env, timeout=60,
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "no Faregate schema: run `faregate db upgrade`" in out.stdout + out.stderr
