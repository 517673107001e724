"""Apply Alembic migrations programmatically (used by `faregate db upgrade` and tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


class SchemaNotReady(RuntimeError):
    """The database has no Faregate schema, or an older one than this code needs."""


def check_schema(engine: Engine, database_url: str) -> str | None:
    """Raise SchemaNotReady when the database is empty or behind this code's migrations (the
    server would fail on its first query, with a less helpful error). A database *ahead* of
    this code (a newer release migrated it: a rolling upgrade, a rollback) is allowed, as
    migrations are additive; a warning is returned for the log."""
    script = ScriptDirectory.from_config(alembic_config(database_url))
    heads = set(script.get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if current == heads:
        return None
    hint = "run `faregate db upgrade` (with the same FAREGATE_DATABASE_URL) first"
    if not current:
        raise SchemaNotReady(f"the database has no Faregate schema: {hint}")
    known = {rev.revision for rev in script.walk_revisions()}
    if current - known:
        return (f"the database is at revision {', '.join(sorted(current))}, newer than this "
                f"release's {', '.join(sorted(heads))}: starting anyway")
    raise SchemaNotReady(f"the database is at revision {', '.join(sorted(current))}, older "
                         f"than this release's {', '.join(sorted(heads))}: {hint}")
