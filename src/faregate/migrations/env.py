"""Alembic environment: one connection, the URL handed over by faregate.db.migrate."""

from __future__ import annotations

from alembic import context

from faregate.db.engine import create_engine
from faregate.db.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None
engine = create_engine(url, pool_size=1)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
