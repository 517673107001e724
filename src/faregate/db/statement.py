"""One PostgreSQL connection on the event loop, in autocommit mode, for hot-path work that is a
single statement (its own transaction): no thread hand-off, no BEGIN or COMMIT.

The pool's connections live on worker threads (`runner.Database`): handing each batch to a
thread woke it, and the two threads then passed the GIL back and forth around every round trip.
That cost grew with the number of batches, so with the number of processes (bench/README,
"Two workers vs one")."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from sqlalchemy import exc
from sqlalchemy.engine import URL

CONNECT_TIMEOUT_S = 10  # as the engine's (db.engine.create_engine)


def conninfo(url: URL) -> str:
    """The engine's URL as psycopg's connection string."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def connect_autocommit(info: str, application_name: str) -> psycopg.AsyncConnection[Any]:
    """A connection of the event loop's, outside the engine's pool, in autocommit mode."""
    return await psycopg.AsyncConnection.connect(
        info, autocommit=True, application_name=application_name,
        connect_timeout=CONNECT_TIMEOUT_S)


class StatementConnection:
    """Opened on first use, and opened anew after it broke. Errors come out as SQLAlchemy's
    (`OperationalError` for a database that cannot be reached, see `db.outage`), like the
    pool's. Calls take turns."""

    def __init__(self, url: URL) -> None:
        self._conninfo = conninfo(url)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._closing: asyncio.Future[None] | None = None

    async def fetchall(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        async with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await connect_autocommit(self._conninfo, "faregate")
                cur = await self._conn.execute(sql, params)
                return await cur.fetchall()
            except psycopg.Error as e:
                if self._conn is not None and self._conn.broken:
                    await self._close_unlocked()
                raise _as_sqlalchemy(e, sql, params) from e
            except asyncio.CancelledError:  # the statement may still be running: start anew
                conn, self._conn = self._conn, None
                if conn is not None:
                    self._closing = asyncio.ensure_future(conn.close())
                raise

    async def close(self) -> None:
        async with self._lock:
            await self._close_unlocked()

    async def _close_unlocked(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


def _as_sqlalchemy(e: psycopg.Error, sql: str, params: tuple[object, ...]) -> exc.DBAPIError:
    kind: type[exc.DBAPIError] = exc.DBAPIError
    for theirs, ours in ((psycopg.OperationalError, exc.OperationalError),
                         (psycopg.IntegrityError, exc.IntegrityError),
                         (psycopg.InterfaceError, exc.InterfaceError)):
        if isinstance(e, theirs):
            kind = ours
            break
    return kind(sql, params, e, hide_parameters=True)  # the batch's rows: long, not useful
