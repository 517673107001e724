"""Engine construction. SQLite runs in WAL mode with synchronous=NORMAL and IMMEDIATE write
transactions; PostgreSQL through psycopg 3 with synchronous_commit left on."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry


def _sqlite_pragmas(*, background_checkpoints: bool) -> Any:
    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB
        if background_checkpoints:
            # The server copies the WAL into the database from a background task every
            # BACKGROUND_CHECKPOINT_S (checkpoint_sqlite), without blocking writers. A writer still
            # checkpoints itself once the WAL passes WRITER_CHECKPOINT_PAGES, which lets the
            # WAL start over (a passive checkpoint never catches up under continuous writes);
            # by then little is left to copy, so the commit that does it waits only briefly.
            cursor.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
            cursor.execute(f"PRAGMA journal_size_limit={WRITER_CHECKPOINT_PAGES * 4096 * 4}")
        cursor.close()

    return on_connect


def _sqlite_on_begin(conn: sa.Connection) -> None:
    # Take the write lock up front: a deferred transaction that later writes can fail with
    # SQLITE_BUSY without waiting, which would turn contention into errors.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, *, pool_size: int = 8,
                  background_checkpoints: bool = False) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, pool_size=pool_size, max_overflow=8, pool_timeout=60)
        event.listen(engine, "connect",
                     _sqlite_pragmas(background_checkpoints=background_checkpoints))
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(
        url, pool_size=pool_size, max_overflow=8, pool_pre_ping=False, pool_recycle=1800,
        # A database that does not answer (a partition, not a refusal) fails a connect in 10 s
        # rather than holding the request until the client gives up.
        connect_args={"application_name": "faregate", "connect_timeout": 10},
    )


def now_ms_expr(engine_or_dialect: Engine | sa.Dialect) -> sa.ColumnElement[int]:
    """The database clock in epoch milliseconds; lease expiries are computed on it."""
    dialect = engine_or_dialect.dialect if isinstance(engine_or_dialect, Engine) else \
        engine_or_dialect
    if dialect.name == "sqlite":
        return sa.literal_column(
            "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)", sa.BigInteger)
    return sa.literal_column(
        "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)", sa.BigInteger)


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


WRITER_CHECKPOINT_PAGES = 4000  # 16 MB of 4 KiB pages
# Measured on the benchmark: every 20 ms cost 6 % more CPU per request at c=32 (hot pages
# copied over and over) for a c=1 p99 of 1.7 instead of 2.5-3 ms; every 250 ms, 3.0-3.3 ms.
BACKGROUND_CHECKPOINT_S = 0.1


def checkpoint_sqlite(engine: Engine) -> None:
    """Copy what the WAL holds into the database without blocking writers (SQLite only)."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()  # outside any transaction: a checkpoint cannot run in one
    try:
        driver = raw.driver_connection
        assert driver is not None
        driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        raw.close()
