"""The live usage feed as Server-Sent Events.

Each open stream polls its organization's newest usage records every `POLL_S` (one indexed
query; see faregate.usage.live) and sends each new record as an event whose `id:` is the
record's id, so a browser's EventSource resumes after a reconnection (`Last-Event-ID`) without
repeating anything. A record that became visible after a later one is still sent, but without
an `id:` line, so the resume point never moves backwards. A comment line every `HEARTBEAT_S`
keeps proxies from closing an idle stream. Every `REAUTH_S` the stream checks that its session
is still live and its user still a member; if not, it ends.

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
from faregate.api.schemas_usage import UsageEventOut
from faregate.errors import RateLimited
from faregate.identity import sessions
from faregate.identity.access import role_of
from faregate.usage.live import Follower, LiveRecord

log = logging.getLogger("faregate.api.usage")

POLL_S = 0.5
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
    """A text/event-stream response that gives its slot back however it ends."""

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


def event(record: LiveRecord, *, in_order: bool = True) -> bytes:
    data = UsageEventOut.of(record).model_dump_json()
    head = f"id: {record.id}\n" if in_order else ""
    return f"{head}event: usage\ndata: {data}\n\n".encode()


async def events(ctx: ApiContext, follower: Follower, backlog: list[LiveRecord], *,
                 session_token: str, user_id: str,
                 stopping: Callable[[], bool] = server_stopping) -> AsyncIterator[bytes]:
    """The stream's bytes: the backlog, then each new record as it settles."""
    loop = asyncio.get_running_loop()
    org = follower.organization_id

    def allowed(conn: sa.Connection) -> bool:
        found = sessions.authenticate(conn, session_token, secret=ctx.session_secret,
                                      idle_s=ctx.settings.session_idle_s)
        return (found is not None and found.user_id == user_id
                and role_of(conn, org, user_id) is not None)

    yield f"retry: {RETRY_MS}\n: live usage of {org}\n\n".encode()
    for record in backlog:
        yield event(record)
    last_sent = last_auth = loop.time()
    while not stopping():
        await asyncio.sleep(POLL_S)
        if stopping():
            break
        now = loop.time()
        try:
            if now - last_auth >= REAUTH_S:
                if not await ctx.db.run(allowed):
                    yield b'event: end\ndata: {"reason": "signed_out_or_not_a_member"}\n\n'
                    return
                last_auth = now
            fresh = await ctx.db.run(follower.poll)
        except Exception:  # a database hiccup: keep the stream, try again at the next tick
            log.warning("live usage poll failed", exc_info=True)
            fresh = []
        if fresh:
            yield b"".join(event(r, in_order=ok) for r, ok in fresh)
            last_sent = now
        elif now - last_sent >= HEARTBEAT_S:
            yield b": keep-alive\n\n"
            last_sent = now
