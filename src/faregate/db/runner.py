"""Run synchronous database work off the event loop, one transaction per call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from sqlalchemy.engine import Engine

P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """An engine plus a small thread pool. `run(fn, ...)` executes `fn(conn, ...)` inside one
    transaction on a worker thread: one thread hand-off per transaction, not per statement."""

    def __init__(self, engine: Engine, *, threads: int = 4) -> None:
        self.engine = engine
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="faregate-db")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._in_transaction, fn, args)

    def _in_transaction(self, fn: Callable[..., T], args: tuple[object, ...]) -> T:
        with self.engine.begin() as conn:
            return fn(conn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.dispose()
