"""Group commit of settlements: requests that finish while a commit is running are committed
together in the next one. No fixed delay: a lone request commits at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable

from faregate.db.outage import UNAVAILABLE
from faregate.db.runner import Database
from faregate.db.statement import StatementConnection
from faregate.kit.metrics import REVENUE_NANO, SETTLEMENT_BATCH, TOKENS
from faregate.ledger.settlement import (
    BatchOutcome,
    Settlement,
    SystemAccounts,
    recover_batch,
    settle_batch,
    settle_leased_pg,
)

log = logging.getLogger("faregate.ledger")

MAX_BATCH = 512


# Like PostgreSQL's commit_delay/commit_siblings: when at least COMMIT_SIBLINGS other requests
# are still running, the committer waits up to COMMIT_DELAY_S for them to join the batch. A
# lone request, or a quiet server, commits at once.
COMMIT_SIBLINGS = 4
COMMIT_DELAY_S = 0.0005
OUTAGE_RETRY_S = 15.0  # below the lease TTL's default (30 s)


class SettlementCommitter:
    def __init__(self, db: Database,
                 on_outcome: Callable[[list[Settlement], BatchOutcome], None],
                 running: Callable[[], int] = lambda: 0) -> None:
        self._db = db
        self._running = running
        self._on_outcome = on_outcome
        self._queue: list[tuple[Settlement, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._system: SystemAccounts | None = None
        # PostgreSQL: the common batch is one statement on a connection of the event loop's.
        self._statement = StatementConnection(db.engine.url) \
            if db.engine.dialect.name == "postgresql" else None

    async def submit(self, item: Settlement) -> None:
        """Queue a settlement and wait until it is durable."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="settlement-committer")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        self._idle.clear()
        self._wake.set()
        # The item is queued: even if this waiter is cancelled, the settlement is committed.
        await fut

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # One turn of the event loop lets requests that finish in this same turn join the
            # batch; under load, a short wait lets more join (fewer, larger commits).
            await asyncio.sleep(0)
            if self._running() >= COMMIT_SIBLINGS:
                await asyncio.sleep(COMMIT_DELAY_S)
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                items = [item for item, _ in batch]
                try:
                    outcome = await self._commit(items)
                except Exception as exc:
                    log.exception("settlement batch of %d failed", len(items))
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                self._on_outcome(items, outcome)
                _count(items)
                for _, fut in batch:
                    if not fut.done():  # a cancelled waiter's item was committed all the same
                        fut.set_result(None)
            self._idle.set()

    async def _commit(self, items: list[Settlement]) -> BatchOutcome:
        # A batch that fails is retried a few times: the requests were served, so their cost
        # must be posted. While the database cannot be reached (a restart, a failover) it is
        # retried for up to OUTAGE_RETRY_S (the streams wait for their last event meanwhile).
        # An attempt that failed may have been settled all the same (the connection broke after
        # the commit, before its acknowledgement): before each retry the committer looks for
        # the batch's usage records, so it is never posted twice nor reported failed.
        delay = 0.05
        deadline = time.monotonic() + OUTAGE_RETRY_S
        attempt = 0
        only_one_statement = True  # every failed attempt was the one statement
        while True:
            path = "recovered"
            try:
                if attempt:
                    done = await self._db.run(recover_batch, items, only_one_statement)
                    if done is not None:
                        log.warning("settlement batch of %d was committed by an attempt that "
                                    "failed", len(items))
                        SETTLEMENT_BATCH.labels(path).observe(len(items))
                        return done
                if self._system is None:
                    self._system = await self._db.run(SystemAccounts.load)
                if self._statement is not None:  # the common batch: one round trip
                    path = "one_statement"
                    done = await settle_leased_pg(self._statement, items, self._system)
                    if done is not None:
                        SETTLEMENT_BATCH.labels(path).observe(len(items))
                        return done
                path = "transaction"
                done = await self._db.run(settle_batch, items, self._system)
                SETTLEMENT_BATCH.labels(path).observe(len(items))
                return done
            except Exception as exc:
                attempt += 1
                only_one_statement &= path != "transaction"
                outage = isinstance(exc, UNAVAILABLE)
                if (time.monotonic() + delay > deadline) if outage else attempt == 6:
                    raise
                log.warning("settlement batch failed, retrying in %.2fs", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def drain(self) -> None:
        if self._queue:
            self._wake.set()
        await self._idle.wait()

    async def stop(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._statement is not None:
            await self._statement.close()


def _count(items: list[Settlement]) -> None:
    """Tokens and charges of a durable batch, into the metrics: one increment per model and
    kind per batch. Input is split as it is priced: uncached and cached."""
    sums: Counter[tuple[str, str]] = Counter()
    charged: Counter[str] = Counter()
    for item in items:
        u = item.usage
        cached = min(max(u.cached_tokens, 0), max(u.prompt_tokens, 0))
        sums[(u.model, "input")] += max(u.prompt_tokens, 0) - cached
        sums[(u.model, "cached_input")] += cached
        sums[(u.model, "output")] += max(u.completion_tokens, 0)
        charged[u.model] += item.charged_nano
    for (model, kind), n in sums.items():
        if n:
            TOKENS.labels(model, kind).inc(n)
    for model, nano in charged.items():
        if nano:
            REVENUE_NANO.labels(model).inc(nano)
