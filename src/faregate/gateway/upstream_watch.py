"""The server's background work for upstreams: write this process's figures and breaker states
to upstream_stats every few seconds, and health-check every enabled upstream periodically.

Both run off the hot path; requests only touch the in-memory UpstreamBoard."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid

import aiohttp

from faregate.catalog.upstream_admin import write_stats
from faregate.db.runner import Database
from faregate.gateway.catalog_cache import CatalogCache
from faregate.upstream.health import check
from faregate.upstream.stats import UpstreamBoard

log = logging.getLogger("faregate.gateway")


class UpstreamWatch:
    def __init__(self, board: UpstreamBoard, db: Database, catalog: CatalogCache,
                 session: aiohttp.ClientSession, *, flush_s: float, health_interval_s: float,
                 health_timeout_s: float) -> None:
        self.board = board
        self.instance_id = "ins_" + uuid.uuid4().hex[:24]
        self._db = db
        self._catalog = catalog
        self._session = session
        self._flush_s = flush_s
        self._health_interval_s = health_interval_s
        self._health_timeout_s = health_timeout_s

    async def flush(self) -> None:
        await self._db.run(functools.partial(write_stats, instance_id=self.instance_id,
                                             rows=self.board.rows()))

    async def check_all(self) -> None:
        """One round of health checks, every upstream at once."""
        targets: dict[int, tuple[str, str, str | None]] = {}
        for routes in self._catalog.snapshot.routes.values():
            for r in routes:
                targets.setdefault(r.upstream_id, (r.upstream, r.base_url, r.api_key))

        async def one(upstream_id: int, name: str, base_url: str, key: str | None) -> None:
            error = await check(self._session, base_url, key, self._health_timeout_s)
            if error is not None:
                log.warning("upstream %s failed its health check: %s", name, error)
            self.board.checked(upstream_id, name, error)

        await asyncio.gather(*(one(i, *t) for i, t in targets.items()))

    async def run_flush(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            try:
                await self.flush()
            except Exception:
                log.warning("writing the upstream figures failed", exc_info=True)

    async def run_health(self) -> None:
        if self._health_interval_s <= 0:
            return
        while True:
            await asyncio.sleep(self._health_interval_s)
            try:
                await self.check_all()
            except Exception:
                log.warning("upstream health checks failed", exc_info=True)
