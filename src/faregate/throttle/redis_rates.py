"""The same limiter as throttle/rates.py, kept in Redis so every process shares it.

One check is one Lua script, one round trip: it reads every bucket's TAT, decides, and writes
them all only when every bucket had room — atomic across processes, with Redis's own clock so
the servers' clocks do not matter. The script returns the backlogs; the headers are worked out
here with the same arithmetic as in memory.

When Redis cannot be reached the check falls back to this process's memory (and says so in the
log, at most every 30 s), trying Redis again a few seconds later: limits then hold per process,
never fail closed."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from faregate.throttle.rates import PERIOD_MS, Decision, Limit, MemoryRates, outcome

log = logging.getLogger("faregate.throttle")

# KEYS: the buckets; ARGV: the period (ms), then limit and cost of each bucket.
# Returns {allowed (1/0), backlog of each bucket before this request (ms, as text)}.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local period = tonumber(ARGV[1])
local backlogs = {}
local allowed = 1
for i = 1, #KEYS do
  local step = period / tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]))
  local backlog = 0
  if tat and tat > now then backlog = tat - now end
  backlogs[i] = backlog
  if backlog + tonumber(ARGV[2 * i + 1]) * step > period then allowed = 0 end
end
if allowed == 1 then
  for i = 1, #KEYS do
    local step = period / tonumber(ARGV[2 * i])
    local ahead = backlogs[i] + tonumber(ARGV[2 * i + 1]) * step
    redis.call('SET', KEYS[i], string.format('%.3f', now + ahead), 'PX',
               math.ceil(ahead) + 1000)
  end
end
local out = {allowed}
for i = 1, #KEYS do out[i + 1] = string.format('%.3f', backlogs[i]) end
return out
"""

RETRY_REDIS_AFTER_S = 5.0
WARN_EVERY_S = 30.0


class RedisRates:
    """Limits shared through Redis; `fallback` holds them in this process while Redis is
    unreachable."""

    def __init__(self, url: str, *, prefix: str = "fg:rl:", timeout_s: float = 0.5) -> None:
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout_s,
                                               socket_timeout=timeout_s)
        self._script = self._client.register_script(GCRA_SCRIPT)
        self._prefix = prefix
        self.fallback = MemoryRates()
        self._down_until = 0.0
        self._warned_at = -WARN_EVERY_S

    async def hit(self, limits: Sequence[Limit]) -> Decision:
        now = time.monotonic()
        if now < self._down_until:
            return self.fallback.hit_now(limits)
        args: list[int] = [PERIOD_MS]
        for lim in limits:
            args += [lim.limit, lim.cost]
        try:
            reply = await self._script(keys=[self._prefix + lim.key for lim in limits],
                                       args=args)
        except (RedisError, OSError) as error:
            self._down_until = now + RETRY_REDIS_AFTER_S
            # The pool's idle connections died with the one that failed: drop them, or each
            # later try (one per RETRY_REDIS_AFTER_S) would fail on the next stale one.
            with contextlib.suppress(RedisError, OSError):
                await self._client.connection_pool.disconnect(inuse_connections=False)
            if now - self._warned_at >= WARN_EVERY_S:
                self._warned_at = now
                log.warning("Redis unreachable for rate limits (%s); limiting in this process "
                            "only until it is back", error)
            return self.fallback.hit_now(limits)
        allowed = int(reply[0]) == 1
        backlogs = [float(b) for b in reply[1:]]
        return Decision(allowed, tuple(outcome(lim, b, allowed)
                                       for lim, b in zip(limits, backlogs, strict=True)))

    async def close(self) -> None:
        await self._client.aclose()
