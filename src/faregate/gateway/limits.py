"""The limit accounts a request counts against for the current period — its key's spend limit
and its project's monthly budget — created on first use and cached, so the hot path touches
the database for them once per account and period."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from faregate.api_keys.service import Principal
from faregate.api_keys.spend_limits import bring_to_limit
from faregate.db.runner import Database
from faregate.errors import InsufficientQuota
from faregate.identity.projects import bring_budget_to_target
from faregate.kit.money import nano_to_usd
from faregate.ledger.leasing import CreditManager
from faregate.ledger.limits import (
    LimitWindow,
    ensure_limit_account,
    key_limit_code,
    project_budget_code,
    window,
)

_MAX_ENTRIES = 100_000


class LimitAccounts:
    def __init__(self, db: Database, credits: CreditManager) -> None:
        self._db = db
        self._credits = credits
        self._ids: dict[str, int] = {}
        self._key_limits: dict[str, int] = {}  # code -> the key's limit this process last saw
        self._budgets: dict[str, int] = {}  # code -> the project's budget this process last saw

    async def account_for(self, p: Principal) -> tuple[int, LimitWindow]:
        """The key's spend-limit account for the current period. When the key's limit has
        changed since this process last saw it (the key cache is at most 2 s old), the process
        gives back its lease of the account and, in the same transaction, moves the account to
        the key's limit (read there, never from a cache), so requests from here on are held to
        it exactly."""
        assert p.spend_limit_nano is not None
        assert p.spend_limit_period is not None
        w = window(p.spend_limit_period)
        code, key_id = key_limit_code(p.key_id, w), p.key_id
        acct = await self._account(code, p.organization_id, p.spend_limit_nano)
        await self._follow(self._key_limits, code, acct, p.spend_limit_nano,
                           lambda conn: bring_to_limit(conn, key_id, actor="gateway"))
        return acct, w

    async def budget_account_for(self, p: Principal) -> tuple[int, LimitWindow]:
        """The project's budget account for the current (UTC calendar) month. A budget that
        changed since this process last saw it is handled as a key's limit is (above): the
        lease goes back and the account is moved to the budget read in that transaction."""
        assert p.project_budget_nano is not None
        assert p.project_id is not None
        w = window("month")
        code, project_id = project_budget_code(p.project_id, w), p.project_id
        acct = await self._account(code, p.organization_id, p.project_budget_nano)
        await self._follow(self._budgets, code, acct, p.project_budget_nano,
                           lambda conn: bring_budget_to_target(conn, project_id,
                                                               actor="gateway"))
        return acct, w

    async def _follow(self, seen: dict[str, int], code: str, acct: int, limit_nano: int,
                      move: Callable[[sa.Connection], object]) -> None:
        """Remember `limit_nano` as the limit of `code`; when it differs from the one this
        process saw before, renew the lease of `acct` with `move` in the same transaction."""
        before = seen.get(code)
        if before == limit_nano:
            return
        if before is not None:
            await self._credits.renew(acct, then=move)
        if len(seen) >= _MAX_ENTRIES:
            seen.clear()
        seen[code] = limit_nano

    async def _account(self, code: str, organization_id: str, limit_nano: int) -> int:
        acct = self._ids.get(code)
        if acct is not None:
            return acct

        def ensure(conn: sa.Connection) -> int:
            return ensure_limit_account(conn, code=code, organization_id=organization_id,
                                        limit_nano=limit_nano)
        acct = await self._db.run(ensure)
        if len(self._ids) >= _MAX_ENTRIES:
            self._ids.clear()
        self._ids[code] = acct
        return acct


def limit_reached(p: Principal, w: LimitWindow) -> InsufficientQuota:
    assert p.spend_limit_nano is not None
    return _reached(f"This API key has reached its {w.describe()} spend limit",
                    p.spend_limit_nano, w,
                    "Raise the key's limit in the dashboard or use another key.",
                    code="api_key_spend_limit_exceeded")


def budget_reached(p: Principal, w: LimitWindow) -> InsufficientQuota:
    assert p.project_budget_nano is not None
    return _reached(f"Project {p.project_id} has reached its monthly budget",
                    p.project_budget_nano, w,
                    "An owner of the organization can raise the project's budget in the "
                    "dashboard.", code="project_spend_limit_exceeded")


def _reached(what: str, limit_nano: int, w: LimitWindow, advice: str, *,
             code: str) -> InsufficientQuota:
    return InsufficientQuota(
        f"{what} of ${nano_to_usd(limit_nano)}; it resets at "
        f"{w.end.strftime('%Y-%m-%d %H:%M')} UTC. {advice}", code=code)
