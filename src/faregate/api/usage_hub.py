"""The live usage feed's pollers: one per organization with an open stream in this process,
however many viewers it has.

A `Feed` follows its organization's newest usage records with one Follower (one query every
`POLL_S` for all its viewers; see faregate.usage.live), encodes each new record once (orjson,
from a plain dict shaped as UsageEventOut) and hands the bytes to every `Subscriber`. It starts
with its first subscriber and stops when its last one leaves.

Joining. Under the feed's lock (no poll runs meanwhile) a new subscriber reads its catch-up
from the database: the records after its Last-Event-ID, or the `backlog` newest (a new feed
starts its follower first, in the same transaction: a record that became visible in between
is then one the follower has still to return). The catch-up may hold records the shared
follower has not returned yet (visible since its last poll): it returns them at its next poll,
and the subscriber, which noted their ids, skips them then. So the subscriber misses nothing
and gets nothing twice. A resumed subscriber also skips every record at or below its resume
point, as before.

Each subscriber keeps its own `id:` cursor: an event whose id is not above the highest id that
subscriber was sent goes without an `id:` line, so its resume point never moves back.

A subscriber's waiting events are bounded: when its stream does not take them (a client that
reads too slowly) and more than `MAX_BEHIND` wait, they are dropped and the subscriber is ended
with reason `too_slow`; its EventSource reconnects with the last id it did receive and
resumes from there. The other subscribers are not affected."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from faregate.api.schemas_usage import usage_event
from faregate.db.runner import Database
from faregate.usage.live import LOOKBACK, Follower, LiveRecord, catch_up

log = logging.getLogger("faregate.api.usage")

POLL_S = 0.5
MAX_BEHIND = 1000  # events a subscriber may have waiting (~0.6 kB each)


@dataclass(frozen=True, slots=True)
class Encoded:
    """One record's event, encoded once for every subscriber."""

    id: int
    settled_at: dt.datetime
    head: bytes  # the `id:` line, for a subscriber to whom it is in order
    body: bytes  # `event: usage` and `data:`


def encode(record: LiveRecord) -> Encoded:
    data = orjson.dumps(usage_event(record), option=orjson.OPT_UTC_Z)
    return Encoded(record.id, record.settled_at, b"id: %d\n" % record.id,
                   b"event: usage\ndata: " + data + b"\n\n")


class Subscriber:
    """One open stream's place in its organization's feed: where it stands, and the bytes
    waiting for it."""

    def __init__(self, hub: Hub, feed: Feed, max_behind: int) -> None:
        self.feed = feed
        self._hub = hub
        self._max_behind = max_behind
        self.ready = False  # joined: the feed hands it events
        self.floor_id = 0  # skip events at or below (resumed: the client had them)
        self.last_id = 0  # the highest id it was sent with an `id:` line
        self.skip: set[int] = set()  # sent in its catch-up, still to come from the follower
        self.pending = 0  # events waiting
        self.ended: str | None = None  # why the feed ended it
        self.closed = False
        self._chunks: deque[bytes] = deque()
        self._wake = asyncio.Event()

    def join(self, first: Sequence[Encoded], floor_id: int, cursor_id: int,
             follower: Follower) -> bytes:
        """Take the stream up after the catch-up `first`; returns the catch-up's bytes."""
        cutoff = follower.high - LOOKBACK
        self.floor_id, self.last_id = floor_id, cursor_id
        # What the follower's next poll will return (see Follower.poll): the subscriber has it.
        self.skip = {e.id for e in first if e.id > follower.floor_id
                     and e.id not in follower.seen and e.settled_at >= cutoff}
        self.ready = True
        return b"".join(e.head + e.body for e in first)

    def offer(self, events: Sequence[Encoded]) -> None:
        """Queue the events this subscriber has not had (called by the feed, in id order)."""
        parts: list[bytes] = []
        n = 0
        for e in events:
            if e.id <= self.floor_id:
                continue
            if e.id in self.skip:
                self.skip.discard(e.id)
                continue
            if e.id > self.last_id:
                parts.append(e.head)
                self.last_id = e.id
            parts.append(e.body)
            n += 1
        if not n:
            return
        if self.pending + n > self._max_behind:
            self.end("too_slow")
            return
        self._chunks.append(b"".join(parts))
        self.pending += n
        self._wake.set()

    async def next(self, timeout_s: float) -> bytes:
        """The events waiting, at once or as soon as some come within `timeout_s` (b"" if
        none came, or when the feed ended this subscriber: see `ended`)."""
        if not self._chunks and self.ended is None:
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
        out = b"".join(self._chunks)
        self._chunks.clear()
        self.pending = 0
        return out

    def end(self, reason: str) -> None:
        """Drop what waits and leave the feed; the stream then ends, saying `reason`."""
        self._chunks.clear()
        self.pending = 0
        self.ended = reason
        self._wake.set()
        self.close()

    def close(self) -> None:
        """Leave the feed (safe to call more than once)."""
        if not self.closed:
            self.closed = True
            self._hub.leave(self)


@dataclass(eq=False)
class Feed:
    """One organization's shared poller and its subscribers."""

    organization_id: str
    follower: Follower | None = None  # set by the first join
    subscribers: list[Subscriber] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None
    polls: int = 0  # queries run by the poller


def _poll(conn: sa.Connection, follower: Follower) -> list[Encoded]:
    return [encode(rec) for rec, _ in follower.poll(conn)]


def _join(conn: sa.Connection, organization_id: str, start_follower: bool,
          resume_after: int | None, backlog: int) -> tuple[Follower | None, list[Encoded],
                                                           int, int]:
    # The follower first: a record that becomes visible between the two reads is then one
    # it has still to return (the catch-up may have it too: the subscriber skips it).
    follower = (Follower.start(conn, organization_id, resume_after=None, backlog=0)[0]
                if start_follower else None)
    first = catch_up(conn, organization_id, resume_after=resume_after, backlog=backlog)
    return follower, [encode(rec) for rec in first.records], first.floor_id, first.cursor_id


class Hub:
    """The process's feeds, by organization."""

    def __init__(self, db: Database, *, poll_s: float = POLL_S,
                 max_behind: int = MAX_BEHIND) -> None:
        self.db = db
        self.poll_s = poll_s
        self.max_behind = max_behind
        self.feeds: dict[str, Feed] = {}

    async def subscribe(self, organization_id: str, *, resume_after: int | None,
                        backlog: int) -> tuple[Subscriber, bytes]:
        """Join the organization's feed (starting it if needed): the subscriber, and the
        catch-up's bytes to send before anything it is handed."""
        feed = self.feeds.get(organization_id)
        if feed is None:
            feed = self.feeds[organization_id] = Feed(organization_id)
            feed.task = asyncio.create_task(self._follow(feed),
                                            name=f"live usage of {organization_id}")
        sub = Subscriber(self, feed, self.max_behind)
        feed.subscribers.append(sub)
        try:
            async with feed.lock:
                started, first, floor_id, cursor_id = await self.db.run(
                    _join, organization_id, feed.follower is None, resume_after, backlog)
                if started is not None:
                    feed.follower = started
                assert feed.follower is not None
                return sub, sub.join(first, floor_id, cursor_id, feed.follower)
        except BaseException:
            sub.close()
            raise

    def leave(self, sub: Subscriber) -> None:
        feed = sub.feed
        if sub in feed.subscribers:
            feed.subscribers.remove(sub)
        if not feed.subscribers and self.feeds.get(feed.organization_id) is feed:
            del self.feeds[feed.organization_id]
            if feed.task is not None:
                feed.task.cancel()

    async def _follow(self, feed: Feed) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self.tick(feed)

    async def tick(self, feed: Feed) -> None:
        """One poll of the feed's records, handed to each of its subscribers."""
        async with feed.lock:
            if feed.follower is None:
                return
            try:
                fresh = await self.db.run(_poll, feed.follower)
            except Exception:  # a database hiccup: try again at the next tick
                log.warning("live usage poll failed", exc_info=True)
                return
            feed.polls += 1
            if fresh:
                for sub in [s for s in feed.subscribers if s.ready]:
                    sub.offer(fresh)

def hub_of(app_state: Any, db: Database) -> Hub:
    """The process's hub, kept on the web app's state."""
    hub = getattr(app_state, "usage_hub", None)
    if not isinstance(hub, Hub) or hub.db is not db:
        hub = Hub(db)
        app_state.usage_hub = hub
    return hub
