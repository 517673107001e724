"""The live usage feed as Server-Sent Events.

Every open stream is a subscriber of its organization's feed in this process (see
faregate.api.usage_hub): one poller per organization queries the newest usage records every
0.5 s and hands each new record, encoded once, to all its streams. An event's `id:` is the
record's id, so a browser's EventSource resumes after a reconnection (`Last-Event-ID`) without
repeating anything. A record that became visible after a later one is still sent, but without
an `id:` line, so the resume point never moves backwards. A comment line every `HEARTBEAT_S`
keeps proxies from closing an idle stream. Every `REAUTH_S` the stream checks that its session
is still live and its user still a member; if not, it ends. A stream whose client reads too
slowly to keep up is ended too (`too_slow`; the hub bounds what waits for it).

Limits: a user has at most `PER_USER_ORG` open streams per organization and a server process at
most `PER_PROCESS` (429 beyond; the dashboard can fall back to polling `/usage/recent`). With
several server processes the limits are per process.

A stream ends when the client goes away (Starlette cancels it on `http.disconnect`) or when the
server is told to stop: uvicorn waits for open responses to finish before it runs the lifespan's
shutdown, so a stream that waited for that would hold the shutdown for its whole grace period.
The stream watches uvicorn's own flag instead (see `server_stopping`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import sqlalchemy as sa
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from faregate.api.context import ApiContext
from faregate.api.usage_hub import POLL_S, Subscriber, hub_of
from faregate.errors import RateLimited
from faregate.identity import sessions
from faregate.identity.access import role_of

log = logging.getLogger("faregate.api.usage")

HEARTBEAT_S = 15.0
REAUTH_S = 15.0
RETRY_MS = 1000  # how soon an EventSource reconnects
PER_USER_ORG = 5
PER_PROCESS = 100


def server_stopping() -> bool:
    """True once uvicorn has been asked to stop (SIGTERM or SIGINT). uvicorn installs its
    Server's `handle_exit` as the signal handler, and that sets `should_exit`; elsewhere (a test
    client, another server) this is False and streams end when their clients leave."""
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return getattr(server, "should_exit", False) is True


class StreamSlots:
    """Counts the open streams of this process, per (user, organization) and in all."""

    def __init__(self, per_user_org: int = PER_USER_ORG, total: int = PER_PROCESS) -> None:
        self.per_user_org = per_user_org
        self.total = total
        self._open: Counter[tuple[str, str]] = Counter()

    def open_count(self, user_id: str, organization_id: str) -> int:
        return self._open[(user_id, organization_id)]

    def acquire(self, user_id: str, organization_id: str) -> Callable[[], None]:
        """Take a slot (RateLimited when none is free); returns its release, which is safe to
        call more than once."""
        who = (user_id, organization_id)
        if self._open[who] >= self.per_user_org:
            raise RateLimited(
                f"You already have {self.per_user_org} live usage streams open for this "
                "organization. Close one (another tab?), or poll GET /api/orgs/{org_id}/usage/"
                "recent instead.", code="too_many_streams", headers={"retry-after": "5"})
        if self._open.total() >= self.total:
            raise RateLimited("This server has too many live usage streams open; try again "
                              "shortly, or poll /usage/recent.", code="too_many_streams",
                              headers={"retry-after": "5"})
        self._open[who] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._open[who] -= 1
                if self._open[who] <= 0:
                    del self._open[who]
        return release


def slots_of(app_state: Any) -> StreamSlots:
    """The process's stream slots, kept on the web app's state."""
    slots = getattr(app_state, "usage_stream_slots", None)
    if not isinstance(slots, StreamSlots):
        slots = StreamSlots()
        app_state.usage_stream_slots = slots
    return slots


class EventStream(StreamingResponse):
    """A text/event-stream response that runs `release` (gives its slot back, leaves its
    feed) however it ends, also when it never starts."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(content, headers={"cache-control": "no-store",
                                           "x-accel-buffering": "no"})
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def open_stream(ctx: ApiContext, app_state: Any, *, organization_id: str, user_id: str,
                      session_token: str, resume_after: int | None,
                      backlog: int) -> EventStream:
    """Take a stream slot (RateLimited when none is free) and join the organization's feed;
    the caller has checked the membership."""
    release = slots_of(app_state).acquire(user_id, organization_id)
    try:
        sub, first = await hub_of(app_state, ctx.db).subscribe(
            organization_id, resume_after=resume_after, backlog=backlog)
    except BaseException:
        release()
        raise

    def close() -> None:
        sub.close()
        release()
    return EventStream(events(ctx, sub, first, session_token=session_token, user_id=user_id),
                       close)


async def events(ctx: ApiContext, sub: Subscriber, first: bytes, *, session_token: str,
                 user_id: str,
                 stopping: Callable[[], bool] = server_stopping) -> AsyncIterator[bytes]:
    """The stream's bytes: the catch-up (backlog or missed records), then what the feed hands
    the subscriber as records settle."""
    loop = asyncio.get_running_loop()
    org = sub.feed.organization_id

    def allowed(conn: sa.Connection) -> bool:
        found = sessions.authenticate(conn, session_token, secret=ctx.session_secret,
                                      idle_s=ctx.settings.session_idle_s)
        return (found is not None and found.user_id == user_id
                and role_of(conn, org, user_id) is not None)

    try:
        yield f"retry: {RETRY_MS}\n: live usage of {org}\n\n".encode()
        if first:
            yield first
        last_sent = last_auth = loop.time()
        while not stopping():
            fresh = await sub.next(POLL_S)
            if sub.ended is not None:
                yield b'event: end\ndata: {"reason": "%s"}\n\n' % sub.ended.encode()
                return
            if stopping():
                break
            now = loop.time()
            if now - last_auth >= REAUTH_S:
                try:
                    ok = await ctx.db.run(allowed)
                except Exception:  # a database hiccup: keep the stream, ask again shortly
                    log.warning("live usage re-authorisation failed", exc_info=True)
                else:
                    if not ok:
                        yield b'event: end\ndata: {"reason": "signed_out_or_not_a_member"}\n\n'
                        return
                    last_auth = now
            if fresh:
                yield fresh
                last_sent = now
            elif now - last_sent >= HEARTBEAT_S:
                yield b": keep-alive\n\n"
                last_sent = now
    finally:
        sub.close()
