"""The catalog snapshot the hot path routes with. A cheap fingerprint is checked every second
in the background and the catalog reloaded when it changed, so that a price change applies
from the moment it is saved (give or take that second); a full reload every minute picks up
anything the fingerprint cannot see (an API key in an environment variable, say)."""

from __future__ import annotations

import asyncio
import logging

from faregate.catalog.service import CatalogSnapshot, catalog_version, load_snapshot
from faregate.db.runner import Database
from faregate.kit.crypto import Cipher

log = logging.getLogger("faregate.gateway")

FULL_RELOAD_EVERY = 60  # intervals


class CatalogCache:
    def __init__(self, db: Database, cipher: Cipher, builtin_base_url: str,
                 interval_s: float = 1.0) -> None:
        self._db = db
        self._cipher = cipher
        self._builtin = builtin_base_url
        self._interval_s = interval_s
        self.snapshot = CatalogSnapshot({}, {})
        self._version: tuple[object, ...] | None = None

    async def reload(self) -> None:
        version = await self._db.run(catalog_version)
        self.snapshot = await self._db.run(load_snapshot, self._cipher, self._builtin)
        self._version = version

    async def run(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(self._interval_s)
            ticks += 1
            try:
                if ticks % FULL_RELOAD_EVERY == 0 or \
                        await self._db.run(catalog_version) != self._version:
                    await self.reload()
            except Exception:
                log.warning("catalog reload failed; keeping the previous snapshot", exc_info=True)
