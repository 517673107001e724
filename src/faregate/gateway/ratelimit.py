"""Requests- and tokens-per-minute limits on /v1, by usage tier and by key, with OpenAI's headers.

A model call is checked after it is parsed and before anything is reserved: against the
organization's RPM and TPM (its tier's) and the key's (the lower of the tier's per-key limit
and the key's own). The tokens counted are an estimate made before the call, as OpenAI does:
the request body's bytes / 4 plus the most output it may produce (max tokens, or the model's
default, times n). A refused call takes nothing from any bucket, and answers 429
rate_limit_exceeded with Retry-After; every checked call gets the x-ratelimit-* headers of the
tighter of the organization's and the key's limits. An organization whose tier has no limits
(Unlimited) and whose key has none costs no limiter work and gets no x-ratelimit headers.

The tiers themselves are read from a small cache reloaded every couple of seconds, so the hot
path never queries the database for them."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence

from faregate.api_keys.service import Principal
from faregate.catalog.service import CatalogSnapshot, ModelInfo
from faregate.db.runner import Database
from faregate.errors import RateLimited
from faregate.gateway.parse import Call
from faregate.kit.metrics import RATE_LIMITED
from faregate.throttle.rates import Limit, MemoryRates, Outcome, RateLimiter, duration
from faregate.throttle.redis_rates import RedisRates
from faregate.tiers.service import Tier, list_tiers, tiers_version

log = logging.getLogger("faregate.gateway")

Headers = list[tuple[bytes, bytes]]

_UNITS = {"requests": ("requests per min (RPM)", "RPM"), "tokens": ("tokens per min (TPM)",
                                                                   "TPM")}


def limiter_from(redis_url: str) -> RateLimiter:
    """Shared by every process through Redis when FAREGATE_REDIS_URL is set, else in memory."""
    if redis_url:
        return RedisRates(redis_url)
    return MemoryRates()


class TierCache:
    """The usage tiers by number; reloaded when they change (checked every `interval_s`)."""

    def __init__(self, db: Database, interval_s: float = 2.0) -> None:
        self._db = db
        self._interval_s = interval_s
        self.tiers: dict[int, Tier] = {}
        self._version: tuple[object, ...] | None = None

    async def reload(self) -> None:
        version = await self._db.run(tiers_version)
        if version != self._version:
            self.tiers = {t.tier: t for t in await self._db.run(list_tiers)}
            self._version = version

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.reload()
            except Exception:
                log.warning("usage tier reload failed; keeping the previous tiers", exc_info=True)


def _lower(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def estimate_tokens(call: Call, body_bytes: int, model: ModelInfo | None) -> int:
    """OpenAI's way: the prompt as bytes / 4, plus the most output the call may produce."""
    prompt = -(-body_bytes // 4)
    if not call.has_output:
        return prompt
    output = call.max_tokens or (model.default_max_tokens if model is not None else 0)
    return prompt + output * call.n


def _model(snapshot: CatalogSnapshot, name: str) -> ModelInfo | None:
    found = snapshot.models.get(name)
    if found is None:
        target = snapshot.aliases.get(name)
        found = snapshot.models.get(target) if target is not None else None
    return found


class RateLimits:
    def __init__(self, limiter: RateLimiter, tiers: TierCache) -> None:
        self.limiter = limiter
        self.tiers = tiers

    async def check(self, principal: Principal, call: Call, body_bytes: int,
                    snapshot: CatalogSnapshot) -> Headers:
        """Take this call from its buckets and return the x-ratelimit headers, or raise
        RateLimited (whose headers include them)."""
        tier = self.tiers.tiers.get(principal.tier)
        org_rpm = tier.rpm if tier is not None else None
        org_tpm = tier.tpm if tier is not None else None
        key_rpm = _lower(tier.key_rpm if tier is not None else None, principal.key_rpm)
        key_tpm = _lower(tier.key_tpm if tier is not None else None, principal.key_tpm)
        if org_rpm is None and org_tpm is None and key_rpm is None and key_tpm is None:
            return []
        org = principal.organization_id
        tokens = estimate_tokens(call, body_bytes, _model(snapshot, call.model))
        scoped: list[tuple[str, str, Limit]] = []  # (kind, "org" | "key", limit)
        base = f"{{{org}}}:"  # one Redis hash slot per organization
        if org_rpm is not None:
            scoped.append(("requests", "org", Limit(base + "rpm", org_rpm, 1)))
        if org_tpm is not None:
            scoped.append(("tokens", "org", Limit(base + "tpm", org_tpm, tokens)))
        key = f"{base}key:{principal.key_id}:"
        if key_rpm is not None and key_rpm != org_rpm:
            scoped.append(("requests", "key", Limit(key + "rpm", key_rpm, 1)))
        if key_tpm is not None and key_tpm != org_tpm:
            scoped.append(("tokens", "key", Limit(key + "tpm", key_tpm, tokens)))
        for kind, scope, lim in scoped:
            if lim.cost > lim.limit:
                raise _too_large(call.model, principal, kind, scope, lim)
        decision = await self.limiter.hit([lim for _, _, lim in scoped])
        headers = _headers(scoped, decision.outcomes)
        if decision.allowed:
            return headers
        i = max(range(len(scoped)), key=lambda j: decision.outcomes[j].retry_ms)
        kind, scope, lim = scoped[i]
        RATE_LIMITED.labels(limit=kind).inc()
        raise _refused(call.model, principal, kind, scope, lim.cost, decision.outcomes[i],
                       headers)


def _headers(scoped: Sequence[tuple[str, str, Limit]], outcomes: Sequence[Outcome]) -> Headers:
    """x-ratelimit-{limit,remaining,reset}-{requests,tokens} of the tighter bucket of each
    kind."""
    tightest: dict[str, Outcome] = {}
    for (kind, _, _), out in zip(scoped, outcomes, strict=True):
        best = tightest.get(kind)
        if best is None or (out.remaining, out.limit) < (best.remaining, best.limit):
            tightest[kind] = out
    headers: Headers = []
    for kind in ("requests", "tokens"):
        tight = tightest.get(kind)
        if tight is not None:
            headers += [(f"x-ratelimit-limit-{kind}".encode(), str(tight.limit).encode()),
                        (f"x-ratelimit-remaining-{kind}".encode(),
                         str(tight.remaining).encode()),
                        (f"x-ratelimit-reset-{kind}".encode(),
                         duration(tight.reset_ms).encode())]
    return headers


def _where(principal: Principal, scope: str) -> str:
    org = f"in organization {principal.organization_id}"
    return f"{org} for API key {principal.key_id}" if scope == "key" else org


def _refused(model: str, principal: Principal, kind: str, scope: str, requested: int,
             out: Outcome, headers: Headers) -> RateLimited:
    unit = _UNITS[kind]
    wait_ms = max(1, math.ceil(out.retry_ms))
    error = RateLimited(
        f"Rate limit reached for {model} {_where(principal, scope)} on {unit[0]}: "
        f"Limit {out.limit}, Used {out.used}, Requested {requested}. Please try again in "
        f"{duration(wait_ms)}. Your limits follow your organization's "
        "usage tier, which rises as you pay; ask your operator to learn more.",
        headers={"retry-after": str(math.ceil(wait_ms / 1000)),
                 "retry-after-ms": str(wait_ms),
                 **{k.decode(): v.decode() for k, v in headers}})
    error.type = kind
    return error


def _too_large(model: str, principal: Principal, kind: str, scope: str,
               lim: Limit) -> RateLimited:
    error = RateLimited(
        f"Request too large for {model} {_where(principal, scope)} on {_UNITS[kind][0]}: "
        f"Limit {lim.limit}, Requested {lim.cost}. The input or output tokens must be reduced "
        "in order to run successfully.", headers={"x-should-retry": "false"})
    error.type = kind
    RATE_LIMITED.labels(limit=kind).inc()
    return error
