"""API key authentication with a short-lived cache.

A cached entry lives at most `ttl_s` (≤ 2 s): the hard bound for a revocation to take effect on
every process. Unknown keys are cached too, and failures are throttled per client IP. The same
bound holds for an operator's deactivation of the key's organization or creator (and for the
reactivation that lifts it): the principal carries it."""

from __future__ import annotations

import datetime as dt
import time

from faregate.api_keys.service import Principal, find_principal, mark_used
from faregate.db.runner import Database
from faregate.errors import AuthenticationFailed, RateLimited
from faregate.kit.crypto import hash_api_key, looks_like_api_key

_MISSING = ("You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
_DEACTIVATED = ("This key is associated with a deactivated account. If you feel this is an "
                "error, contact the operator of this Faregate server.")
_MAX_ENTRIES = 100_000


def _redact(key: str) -> str:
    return f"{key[:6]}***{key[-4:]}" if len(key) > 12 else "***"


class KeyAuthenticator:
    def __init__(self, db: Database, pepper: bytes, *, ttl_s: float,
                 failures_per_minute: int) -> None:
        self._db = db
        self._pepper = pepper
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._failures: dict[str, tuple[int, float]] = {}
        self._failures_per_minute = failures_per_minute
        self.last_used: dict[str, float] = {}

    async def authenticate(self, authorization: str | None, client_ip: str) -> Principal:
        if not authorization:
            raise AuthenticationFailed(_MISSING, code=None)
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise AuthenticationFailed(_MISSING, code=None)
        principal = await self._lookup(key, client_ip) if looks_like_api_key(key) else None
        if principal is None:
            self._check_throttle(client_ip)
            self._record_failure(client_ip)
            raise AuthenticationFailed(f"Incorrect API key provided: {_redact(key)}. You can "
                                       "find your API key in the dashboard.")
        if principal.deactivated is not None:
            # OpenAI's answer for a deactivated account; not a failure to throttle: the key
            # is right, only an operator can lift it.
            raise AuthenticationFailed(_DEACTIVATED, code="account_deactivated")
        now = time.time()
        if principal.expires_at is not None and now >= principal.expires_at:
            expired = dt.datetime.fromtimestamp(principal.expires_at, dt.UTC)
            raise AuthenticationFailed(
                f"The API key {_redact(key)} expired on {expired:%Y-%m-%d %H:%M} UTC. Create a "
                "new key in the dashboard.", code="api_key_expired")
        self.last_used[principal.key_id] = now
        return principal

    async def flush_last_used(self) -> None:
        """Write when keys were last used (every few seconds, never on the request path)."""
        if not self.last_used:
            return
        used, self.last_used = self.last_used, {}
        stamps = {k: dt.datetime.fromtimestamp(v, dt.UTC) for k, v in used.items()}
        await self._db.run(mark_used, stamps)

    async def _lookup(self, key: str, client_ip: str) -> Principal | None:
        digest = hash_api_key(key, self._pepper)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        # An address that keeps sending unknown keys gets no more database look-ups for a
        # while; keys already known (cached) still pass.
        self._check_throttle(client_ip)
        principal = await self._db.run(find_principal, digest)
        if len(self._cache) >= _MAX_ENTRIES:
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            if len(self._cache) >= _MAX_ENTRIES:
                self._cache.clear()
        self._cache[digest] = (principal, now + self._ttl_s)
        return principal

    def _check_throttle(self, client_ip: str) -> None:
        count, since = self._failures.get(client_ip, (0, 0.0))
        if count >= self._failures_per_minute and time.monotonic() - since < 60:
            retry = max(1, int(60 - (time.monotonic() - since)))
            raise RateLimited("Too many requests with invalid API keys from your address. "
                              f"Please try again in {retry}s.", headers={"retry-after": str(retry)})

    def _record_failure(self, client_ip: str) -> None:
        now = time.monotonic()
        count, since = self._failures.get(client_ip, (0, now))
        if now - since >= 60:
            count, since = 0, now
        if len(self._failures) >= _MAX_ENTRIES:
            self._failures.clear()
        self._failures[client_ip] = (count + 1, since)
