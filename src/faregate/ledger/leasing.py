"""Reservations against leased credit, in memory, exact.

A process leases credit from an account in one transaction (the database keeps
debits + held <= credits), then reserves and settles requests against the lease in memory. The
check and the decrement of a reservation happen with no `await` between them, so concurrent
requests on one event loop can never reserve the same nano-dollar twice.

What one process holds another cannot use until it is returned (at once after 2 s idle). On
PostgreSQL a process whose request comes up short while peers hold credit of the account asks
them for it (LISTEN/NOTIFY): each returns the spare part of its lease (what its requests in
flight have not reserved) and says so, and the asking process leases again. It asks about an
account at most once per ASK_INTERVAL_S and waits at most HANDBACK_WAIT_S, so a balance that is
simply spent costs one small query per second, not a flood."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from faregate.db.listen import Listener, notify
from faregate.db.runner import Database
from faregate.kit.metrics import LEASE_HANDBACK, OPEN_HOLDS
from faregate.ledger import leases as lease_db
from faregate.ledger.committer import SettlementCommitter
from faregate.ledger.settlement import BatchOutcome, LimitPart, Settlement, UsageFacts

log = logging.getLogger("faregate.ledger")

EXHAUSTED_RECHECK_S = 1.0
HANDBACK_CHANNEL = "faregate_leases"
ASK_INTERVAL_S = 1.0
HANDBACK_WAIT_S = 0.25


@dataclass(slots=True)
class Lease:
    id: int
    acct_id: int
    leased: int = 0  # what the database holds for this lease
    reserved: int = 0  # reserved by requests in flight
    pending: int = 0  # settled in memory, not yet committed
    gone: bool = False

    @property
    def free(self) -> int:
        return self.leased - self.reserved - self.pending


@dataclass(slots=True)
class _AccountState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    lease: Lease | None = None
    last_active: float = 0.0
    recent_ask: int = 0
    exhausted_until: float = 0.0
    asked_until: float = 0.0  # peers were asked for credit of the account: not again before


@dataclass(slots=True)
class _Ask:
    waiting_for: set[str]  # the owners of the peers' leases that have not answered yet
    handed_back: bool = False
    answered: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class Reservation:
    acct_id: int
    lease: Lease | None  # None for a request that reserved nothing (a free model)
    amount_nano: int
    settled: bool = False
    # The same amount reserved from each spend-limit account the request counts against.
    limit_leases: tuple[Lease, ...] = ()
    # When less than wanted was reserved: which account (0 = the balance) had the least.
    limited_by: int = 0


@dataclass(frozen=True, slots=True)
class Shortfall:
    """A joint reservation failed: `index` is the account (0 = the balance, 1.. = the limits,
    in the order given) that could not provide what the request needs."""

    index: int


class CreditManager:
    """Per-process leases of credit, one per account in use."""

    def __init__(self, db: Database, *, ttl_s: int, max_lease_nano: int,
                 idle_return_s: float = 2.0) -> None:
        self._db = db
        self._ttl_ms = ttl_s * 1000
        self._max_lease = max_lease_nano
        self._idle_return_s = idle_return_s
        self._accounts: dict[int, _AccountState] = {}
        self._old: dict[int, Lease] = {}  # replaced leases that still have requests in flight
        self._last_heartbeat = time.monotonic()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.running = 0  # reservations not yet settled or released
        self.committer = SettlementCommitter(db, on_outcome=self._apply_outcome,
                                             running=lambda: self.running)
        self._peers = Listener(db.engine.url, HANDBACK_CHANNEL, self._on_peer_note) \
            if db.engine.dialect.name == "postgresql" else None
        self._asks: dict[int, _Ask] = {}  # account -> this process's question to its peers
        self._answering: set[asyncio.Task[None]] = set()

    @property
    def answers_peers(self) -> bool:
        """Listening for peers that ask for credit (see `start`)."""
        return self._peers is not None and self._peers.listening.is_set()

    def start(self) -> None:
        """Listen for peers asking for credit (PostgreSQL); without it this process neither
        asks nor answers."""
        if self._peers is not None:
            self._peers.start()

    def try_reserve_now(self, acct_id: int, amount_nano: int) -> Reservation | None:
        """The fast path: reserve from the current lease without touching the database."""
        st = self._accounts.get(acct_id)
        if st is None or st.lease is None or st.lease.gone or st.lease.free < amount_nano:
            return None
        st.lease.reserved += amount_nano
        st.last_active = time.monotonic()
        self.running += 1
        return Reservation(acct_id, st.lease, amount_nano)

    async def reserve(self, acct_id: int, want_nano: int, need_nano: int) -> Reservation | None:
        """Reserve `want_nano`, or failing that the most available that is at least
        `need_nano`; None when not even `need_nano` can be had."""
        if want_nano <= 0:
            self.running += 1
            return Reservation(acct_id, None, 0)
        res = self.try_reserve_now(acct_id, want_nano)
        if res is not None:
            return res
        st = self._accounts.setdefault(acct_id, _AccountState())
        async with st.lock:
            res = self.try_reserve_now(acct_id, want_nano)
            if res is not None:
                return res
            if time.monotonic() < st.exhausted_until:
                # The account ran dry a moment ago: serve from what is leased, and do not turn
                # a flood of refused requests into a flood of write transactions. A top-up is
                # seen within EXHAUSTED_RECHECK_S.
                lease = self._live_lease(acct_id)
            else:
                lease = await self._grow(acct_id, st, want_nano)
            lease = await self._refill_from_peers(acct_id, st, lease, want_nano, need_nano)
            take = min(want_nano, lease.free) if lease is not None else 0
            if take < want_nano:
                st.exhausted_until = time.monotonic() + EXHAUSTED_RECHECK_S
            if lease is None or take < need_nano or take <= 0:
                return None
            lease.reserved += take
            st.last_active = time.monotonic()
            self.running += 1
            return Reservation(acct_id, lease, take)

    async def reserve_joint(self, acct_ids: tuple[int, ...], want_nano: int,
                            need_nano: int) -> Reservation | Shortfall:
        """Reserve the same amount from the balance (`acct_ids[0]`) and from every spend-limit
        account after it, all or nothing: `want_nano`, or the most all of them have that is at
        least `need_nano`."""
        if len(acct_ids) == 1:
            res = await self.reserve(acct_ids[0], want_nano, need_nano)
            return res if res is not None else Shortfall(0)
        if want_nano <= 0:
            self.running += 1
            return Reservation(acct_ids[0], None, 0)
        fast = [self._live_lease(a) for a in acct_ids]
        if all(x is not None and x.free >= want_nano for x in fast):
            return self._take([x for x in fast if x is not None], want_nano)
        states = [self._accounts.setdefault(a, _AccountState()) for a in acct_ids]
        async with contextlib.AsyncExitStack() as stack:
            for a in sorted(set(acct_ids)):  # one global order: no deadlock between requests
                await stack.enter_async_context(self._accounts[a].lock)
            leases: list[Lease | None] = []
            for acct_id, st in zip(acct_ids, states, strict=True):
                lease = self._live_lease(acct_id)
                if (lease is None or lease.free < want_nano) and \
                        time.monotonic() >= st.exhausted_until:
                    lease = await self._grow(acct_id, st, want_nano)
                leases.append(await self._refill_from_peers(acct_id, st, lease, want_nano,
                                                            need_nano))
            free = [x.free if x is not None else 0 for x in leases]
            for st, room in zip(states, free, strict=True):
                if room < want_nano:
                    st.exhausted_until = time.monotonic() + EXHAUSTED_RECHECK_S
            take = min(want_nano, *free)
            if take < need_nano or take <= 0:
                return Shortfall(free.index(min(free)))
            res = self._take([x for x in leases if x is not None], take)
            res.limited_by = free.index(min(free)) if take < want_nano else 0
            return res

    async def _refill_from_peers(self, acct_id: int, st: _AccountState, lease: Lease | None,
                                 want: int, need: int) -> Lease | None:
        """The lease, grown again once peers handed credit back, when it holds less than
        `want`; else as it was."""
        room = lease.free if lease is not None else 0
        if room < want and await self._ask_peers(acct_id, st, max(1, need - room)):
            return await self._grow(acct_id, st, want)
        return lease

    async def _ask_peers(self, acct_id: int, st: _AccountState, short: int) -> bool:
        """Ask the other processes that hold credit of the account for their spare part, when
        together they hold at least `short`; waits until each has answered (or
        HANDBACK_WAIT_S), True when any handed some back (the caller leases again)."""
        if not self.answers_peers:
            return False
        now = time.monotonic()
        if now < st.asked_until:
            return False
        st.asked_until = now + ASK_INTERVAL_S
        holders = await self._db.run(lease_db.holders, acct_id, self.owner)
        if sum(holders.values()) < short:
            return False
        ask = self._asks[acct_id] = _Ask(set(holders))
        try:
            await self._db.run(notify, HANDBACK_CHANNEL, f"want {acct_id} {self.owner}")
            LEASE_HANDBACK.labels("asked").inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ask.answered.wait(), HANDBACK_WAIT_S)
        finally:
            if self._asks.get(acct_id) is ask:
                del self._asks[acct_id]
        if ask.handed_back:
            LEASE_HANDBACK.labels("received").inc()
        return ask.handed_back

    def _on_peer_note(self, payload: str) -> None:
        kind, _, rest = payload.partition(" ")
        acct, _, owner = rest.partition(" ")
        if owner == self.owner or not acct.isdigit():
            return
        if kind == "want":
            task = asyncio.create_task(self._hand_back(int(acct)), name="lease-hand-back")
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)
        elif kind in ("back", "none") and (ask := self._asks.get(int(acct))) is not None:
            ask.handed_back |= kind == "back"
            ask.waiting_for.discard(owner)
            if not ask.waiting_for:
                ask.answered.set()

    async def _hand_back(self, acct_id: int) -> None:
        """A peer came up short on this account: return the spare part of this process's
        lease (`renew`) and say so in the same transaction; with nothing spare, or while this
        process is leasing for the account itself, say that."""
        lease = self._live_lease(acct_id)
        st = self._accounts.get(acct_id)
        try:
            if lease is None or lease.free <= 0 or st is None or st.lock.locked():
                if st is not None or any(x.acct_id == acct_id for x in self._old.values()):
                    await self._db.run(notify, HANDBACK_CHANNEL, f"none {acct_id} {self.owner}")
                return
            await self.renew(acct_id, then=lambda conn: notify(
                conn, HANDBACK_CHANNEL, f"back {acct_id} {self.owner}"))
        except Exception:
            log.warning("answering a peer about account %d failed", acct_id, exc_info=True)
            return
        LEASE_HANDBACK.labels("returned").inc()

    def _live_lease(self, acct_id: int) -> Lease | None:
        st = self._accounts.get(acct_id)
        if st is None or st.lease is None or st.lease.gone:
            return None
        return st.lease

    def _take(self, leases: list[Lease], amount: int) -> Reservation:
        now = time.monotonic()
        for lease in leases:
            lease.reserved += amount
            self._accounts[lease.acct_id].last_active = now
        self.running += 1
        return Reservation(leases[0].acct_id, leases[0], amount, limit_leases=tuple(leases[1:]))

    async def _grow(self, acct_id: int, st: _AccountState, want: int) -> Lease | None:
        lease = self._live_lease(acct_id)
        free = lease.free if lease is not None else 0
        deficit = max(0, want - free)
        # Lease in chunks that grow with demand, so a busy account costs one transaction per
        # many requests, while an idle or small balance is not locked up by one process.
        st.recent_ask = min(self._max_lease, max(want * 32, st.recent_ask * 2))
        ask = max(deficit, st.recent_ask)
        try:
            grant = await self._acquire(acct_id, lease.id if lease else None, deficit, ask)
        except lease_db.LeaseGone:
            assert lease is not None
            self._retire(st, lease)
            grant = await self._acquire(acct_id, None, want, max(want, st.recent_ask))
            lease = None
        if grant is None:  # nothing available, and no lease to grow
            return lease
        if lease is None:
            lease = Lease(grant.lease_id, acct_id)
            if st.lease is not None:
                self._retire(st, st.lease)
            st.lease = lease
        lease.leased += grant.granted_nano
        return lease

    async def _acquire(self, acct_id: int, lease_id: int | None, deficit: int,
                       ask: int) -> lease_db.LeaseGrant | None:
        def run(conn: sa.Connection) -> lease_db.LeaseGrant | None:
            return lease_db.acquire(conn, acct_id=acct_id, lease_id=lease_id, owner=self.owner,
                                    deficit_nano=deficit, ask_nano=ask, ttl_ms=self._ttl_ms)
        return await self._db.run(run)

    def _retire(self, st: _AccountState, lease: Lease) -> None:
        if st.lease is lease:
            st.lease = None
        if lease.reserved or lease.pending:
            self._old[lease.id] = lease

    def release(self, res: Reservation) -> None:
        """Give a reservation back untouched (the request was refused or failed upstream)."""
        if not res.settled:
            res.settled = True
            self.running -= 1
            if res.lease is not None:
                res.lease.reserved -= res.amount_nano
            for lease in res.limit_leases:
                lease.reserved -= res.amount_nano

    async def settle(self, res: Reservation, cost_nano: int, usage: UsageFacts) -> Settlement:
        """Post the actual cost; returns once the settlement is durable."""
        assert not res.settled, "reservation settled twice"
        res.settled = True
        self.running -= 1
        lease = res.lease
        from_lease = 0
        if lease is not None:
            lease.reserved -= res.amount_nano
            from_lease = 0 if lease.gone else min(cost_nano, max(0, lease.free))
            for limit in res.limit_leases:
                limit.reserved -= res.amount_nano
                from_lease = 0 if limit.gone else min(from_lease, max(0, limit.free))
            lease.pending += from_lease
            for limit in res.limit_leases:
                limit.pending += from_lease
        item = Settlement(acct_id=res.acct_id, lease_id=lease.id if lease else None,
                          cost_nano=cost_nano, from_lease_nano=from_lease, usage=usage,
                          limits=tuple(LimitPart(x.acct_id, x.id) for x in res.limit_leases))
        await self.committer.submit(item)
        return item

    def _apply_outcome(self, items: list[Settlement], outcome: BatchOutcome) -> None:
        leases_by_id: dict[int, Lease] = {}
        for st in self._accounts.values():
            if st.lease is not None:
                leases_by_id[st.lease.id] = st.lease
        leases_by_id.update(self._old)
        for item in items:
            for lease_id in (item.lease_id, *(p.lease_id for p in item.limits)):
                lease = leases_by_id.get(lease_id) if lease_id is not None else None
                if lease is None:
                    continue
                lease.pending -= item.from_lease_nano
                if lease_id in outcome.lease_deducted:
                    lease.leased -= item.from_lease_nano
        for lease_id in outcome.leases_gone:
            gone = leases_by_id.get(lease_id)
            if gone is not None:
                self._mark_gone(gone)
        self._forget_finished_old()

    def _mark_gone(self, lease: Lease) -> None:
        lease.gone = True
        lease.leased = 0
        st = self._accounts.get(lease.acct_id)
        if st is not None and st.lease is lease:
            self._retire(st, lease)

    def _forget_finished_old(self) -> None:
        # A replaced lease that is still open is closed by `_close_drained_old` first.
        for lease_id in [i for i, x in self._old.items()
                         if x.gone and not x.reserved and not x.pending]:
            del self._old[lease_id]

    async def _close_drained_old(self) -> None:
        """Return what replaced leases still hold once their last requests have settled."""
        for lease in [x for x in self._old.values()
                      if not x.gone and not x.reserved and not x.pending]:
            lease.gone = True
            amount, lease.leased = lease.leased, 0
            await self._db.run(_release, lease.id, lease.acct_id, amount)

    async def renew(self, acct_id: int,
                    then: Callable[[sa.Connection], object] | None = None) -> None:
        """Stop reserving from this process's lease of the account: what it holds beyond the
        requests in flight on it goes back to the account at once, in one transaction with
        `then` (which sees the account without it); those requests settle on it as before and
        the rest returns when they finish. The next reservation leases afresh. For an account
        whose terms changed under the lease (a spend limit lowered while this process held
        part of it)."""
        st = self._accounts.setdefault(acct_id, _AccountState())
        async with st.lock:
            lease = self._live_lease(acct_id)
            st.exhausted_until = 0.0
            spare, close = 0, False
            if lease is not None:
                st.lease = None
                st.recent_ask = 0
                spare = max(0, lease.free)
                lease.leased -= spare  # before the await: settlements must not count on it
                close = not lease.reserved and not lease.pending
                if close:
                    lease.gone = True
                else:
                    self._old[lease.id] = lease

            def run(conn: sa.Connection) -> bool:
                done = lease is None or lease_db.release(
                    conn, lease_id=lease.id, acct_id=acct_id, amount_nano=spare, close=close)
                if then is not None:
                    then(conn)
                return done
            try:
                released = await self._db.run(run)
            except BaseException:
                if lease is not None:  # the database still holds it: let it lapse, unused
                    self._mark_gone(lease)
                raise
            if not released and lease is not None:
                self._mark_gone(lease)

    async def maintain(self) -> None:
        """Heartbeat open leases and return idle ones. Called periodically."""
        now = time.monotonic()
        OPEN_HOLDS.set(self.running)  # once a second: the gauge costs the hot path nothing
        if now - self._last_heartbeat >= self._ttl_ms / 3000:
            self._last_heartbeat = now
            await self._heartbeat()
        for acct_id, st in list(self._accounts.items()):
            lease = st.lease
            if (lease is not None and not lease.reserved and not lease.pending
                    and now - st.last_active > self._idle_return_s and not st.lock.locked()):
                await self._close(st, lease)
            elif lease is None and not st.lock.locked() and now - st.last_active > 60:
                del self._accounts[acct_id]
        await self._close_drained_old()
        self._forget_finished_old()

    async def _heartbeat(self) -> None:
        live = [st.lease for st in self._accounts.values() if st.lease and not st.lease.gone]
        live += [x for x in self._old.values() if not x.gone]
        if live:
            still_open = await self._db.run(lease_db.heartbeat, [x.id for x in live],
                                            self._ttl_ms)
            for gone in live:
                if gone.id not in still_open:
                    self._mark_gone(gone)

    async def _close(self, st: _AccountState, lease: Lease) -> None:
        st.lease = None  # new requests open a fresh lease; nothing is reserved on this one
        st.recent_ask = 0
        amount = lease.leased
        lease.gone = True
        await self._db.run(_release, lease.id, lease.acct_id, amount)
        lease.leased = 0

    async def close(self) -> None:
        """Clean shutdown: commit what is pending, then return every lease."""
        if self._peers is not None:
            await self._peers.stop()
        await asyncio.gather(*self._answering, return_exceptions=True)
        await self.committer.drain()
        for st in list(self._accounts.values()):
            if st.lease is not None and not st.lease.gone:
                await self._close(st, st.lease)
        await self._close_drained_old()
        await self.committer.stop()


def _release(conn: sa.Connection, lease_id: int, acct_id: int, amount: int) -> bool:
    return lease_db.release(conn, lease_id=lease_id, acct_id=acct_id, amount_nano=amount,
                            close=True)
