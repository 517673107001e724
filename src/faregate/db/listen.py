"""PostgreSQL LISTEN on one channel, on the event loop: each notification's payload goes to a
callback. Its own connection (autocommit), opened anew after it breaks (a restart, a failover):
notifications sent while it was down are lost, so what listens must treat them as hints.

Sending is `notify(conn, channel, payload)` inside any transaction: delivered at its commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import URL

from faregate.db.statement import connect_autocommit, conninfo

log = logging.getLogger("faregate.db")


def notify(conn: sa.Connection, channel: str, payload: str) -> None:
    conn.execute(sa.select(sa.func.pg_notify(channel, payload)))


class Listener:
    def __init__(self, url: URL, channel: str, on_payload: Callable[[str], None]) -> None:
        self._conninfo = conninfo(url)
        self._channel = channel
        self._on_payload = on_payload
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"listen-{self._channel}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.listening.clear()

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await connect_autocommit(self._conninfo, "faregate-listen") as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self.listening.set()
                    delay = 0.5
                    async for note in conn.notifies():
                        try:
                            self._on_payload(note.payload)
                        except Exception:
                            log.exception("notification %r on %s", note.payload, self._channel)
            except psycopg.Error as e:
                log.warning("listening on %s: %s; again in %.1fs", self._channel, e, delay)
            self.listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
