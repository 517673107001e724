"""/readyz and who may read /metrics.

/healthz says the process is up (liveness); /readyz says it can serve: the database answers a
query within a short timeout, the catalog snapshot is loaded, and Redis answers when one is
configured. A load balancer or orchestrator takes a server out of rotation on 503."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from faregate.config import Settings
from faregate.gateway.state import GatewayState
from faregate.kit.netinfo import client_ip, parse_networks

CHECK_TIMEOUT_S = 2.0


@dataclass
class Readiness:
    """Runs the checks; at most one database probe at a time, so that a database that hangs
    ties up one thread, not one per probe."""

    _db_probe: asyncio.Future[Any] | None = field(default=None, init=False)

    async def check(self, state: GatewayState | None) -> tuple[bool, dict[str, str]]:
        if state is None:
            return False, {"server": "starting"}
        checks = {"database": await self._database(state),
                  "catalog": _catalog(state),
                  "redis": await _redis(state.settings.redis_url)}
        ready = all(v in ("ok", "not configured") for v in checks.values())
        return ready, checks

    async def _database(self, state: GatewayState) -> str:
        if self._db_probe is not None and not self._db_probe.done():
            return "error: an earlier check has not answered yet"
        engine = state.db.engine

        def probe() -> None:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        self._db_probe = asyncio.ensure_future(asyncio.to_thread(probe))
        try:
            await asyncio.wait_for(asyncio.shield(self._db_probe), CHECK_TIMEOUT_S)
        except TimeoutError:
            return f"error: no answer within {CHECK_TIMEOUT_S:g}s"
        except Exception as exc:  # the reason goes to the operator, not a stack trace
            return f"error: {type(exc).__name__}"
        return "ok"


def _catalog(state: GatewayState) -> str:
    # The lifespan loads the snapshot before it publishes the state (a failed first load fails
    # the start), and a reload that fails later keeps the previous snapshot, which still
    # routes: once there is a state, there is a snapshot.
    return "ok" if state.catalog.snapshot is not None else "error: not loaded"


async def _redis(url: str) -> str:
    if not url:
        return "not configured"
    import redis.asyncio as aioredis  # only servers configured with Redis need it

    client = aioredis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_S,
                                     socket_timeout=CHECK_TIMEOUT_S)
    try:
        await asyncio.wait_for(client.ping(), CHECK_TIMEOUT_S)
    except (TimeoutError, OSError, aioredis.RedisError) as exc:
        return f"error: {type(exc).__name__}"
    finally:
        await client.aclose()
    return "ok"


def metrics_allowed(scope: Mapping[str, Any], settings: Settings) -> bool:
    """From an allowed network (the client address as resolved through trusted proxies, so
    that a proxy on loopback does not open /metrics to the world), or with the bearer token."""
    token = settings.metrics_token
    if token is not None:
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                given = bytes(value).decode("latin-1")
                if given.startswith("Bearer ") and hmac.compare_digest(
                        given[7:].strip().encode(), token.get_secret_value().encode()):
                    return True
    allowed = parse_networks(tuple(settings.metrics_allow))
    if not allowed:
        return False
    address = client_ip(scope, tuple(settings.trusted_proxies))
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in allowed)
