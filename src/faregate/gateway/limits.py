"""The spend-limit account of a key for the current period, created on first use and cached."""

from __future__ import annotations

import sqlalchemy as sa

from faregate.api_keys.service import Principal
from faregate.db.runner import Database
from faregate.errors import InsufficientQuota
from faregate.kit.money import nano_to_usd
from faregate.ledger.limits import LimitWindow, ensure_limit_account, key_limit_code, window

_MAX_ENTRIES = 100_000


class LimitAccounts:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._ids: dict[str, int] = {}

    async def account_for(self, p: Principal) -> tuple[int, LimitWindow]:
        assert p.spend_limit_nano is not None
        assert p.spend_limit_period is not None
        w = window(p.spend_limit_period)
        code = key_limit_code(p.key_id, w)
        acct = self._ids.get(code)
        if acct is None:
            org, limit = p.organization_id, p.spend_limit_nano

            def ensure(conn: sa.Connection) -> int:
                return ensure_limit_account(conn, code=code, organization_id=org,
                                            limit_nano=limit)
            acct = await self._db.run(ensure)
            if len(self._ids) >= _MAX_ENTRIES:
                self._ids.clear()
            self._ids[code] = acct
        return acct, w


def limit_reached(p: Principal, w: LimitWindow) -> InsufficientQuota:
    assert p.spend_limit_nano is not None
    return InsufficientQuota(
        f"This API key has reached its {w.describe()} spend limit of "
        f"${nano_to_usd(p.spend_limit_nano)}; it resets at "
        f"{w.end.strftime('%Y-%m-%d %H:%M')} UTC. Raise the key's limit in the dashboard or use "
        "another key.", code="api_key_spend_limit_exceeded")
