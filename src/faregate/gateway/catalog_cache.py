"""The catalog snapshot the hot path routes with, reloaded every second in the background so
that a price change applies from the moment it is saved (give or take that second)."""

from __future__ import annotations

import asyncio
import logging

from faregate.catalog.service import CatalogSnapshot, load_snapshot
from faregate.db.runner import Database
from faregate.kit.crypto import Cipher

log = logging.getLogger("faregate.gateway")


class CatalogCache:
    def __init__(self, db: Database, cipher: Cipher, builtin_base_url: str,
                 interval_s: float = 1.0) -> None:
        self._db = db
        self._cipher = cipher
        self._builtin = builtin_base_url
        self._interval_s = interval_s
        self.snapshot = CatalogSnapshot({}, {})

    async def reload(self) -> None:
        self.snapshot = await self._db.run(load_snapshot, self._cipher, self._builtin)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.reload()
            except Exception:
                log.warning("catalog reload failed; keeping the previous snapshot", exc_info=True)
