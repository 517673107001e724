"""Sliding-window attempt limits (sign-in, sign-up, password resets) shared by every process.

Each attempt is a row (scope, subject hash, time). `check` counts the rows in the window and
refuses with 429 and Retry-After; `record` adds one. The subject (an email, an IP address) is
stored only as a keyed hash."""

from __future__ import annotations

import math
import time

import sqlalchemy as sa

from faregate.db.schema import throttle_events
from faregate.errors import RateLimited
from faregate.kit.crypto import keyed_hash


def _subject(secret: bytes, scope: str, subject: str) -> str:
    return keyed_hash(secret, subject.lower(), purpose=f"throttle:{scope}")


def _now_ms() -> int:
    return int(time.time() * 1000)


def check(conn: sa.Connection, *, scope: str, subject: str, limit: int, window_s: int,
          secret: bytes, message: str) -> None:
    """Raise RateLimited when `subject` already made `limit` attempts in the last `window_s`."""
    now = _now_ms()
    since = now - window_s * 1000
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.min(throttle_events.c.at_ms))
        .where(throttle_events.c.scope == scope,
               throttle_events.c.subject == _subject(secret, scope, subject),
               throttle_events.c.at_ms > since)).one()
    count, oldest = int(row[0]), row[1]
    if count >= limit:
        retry_s = max(1, math.ceil((int(oldest) + window_s * 1000 - now) / 1000))
        raise RateLimited(f"{message} Please try again in {_human(retry_s)}.",
                          headers={"retry-after": str(retry_s)})


def record(conn: sa.Connection, *, scope: str, subject: str, secret: bytes) -> None:
    conn.execute(throttle_events.insert().values(
        scope=scope, subject=_subject(secret, scope, subject), at_ms=_now_ms()))


def count(conn: sa.Connection, *, scope: str, subject: str, window_s: int,
          secret: bytes) -> int:
    since = _now_ms() - window_s * 1000
    return int(conn.execute(
        sa.select(sa.func.count()).where(
            throttle_events.c.scope == scope,
            throttle_events.c.subject == _subject(secret, scope, subject),
            throttle_events.c.at_ms > since)).scalar_one())


def prune(conn: sa.Connection, *, older_than_s: int = 86400) -> int:
    """Delete attempts older than any window (run by the background worker)."""
    cutoff = _now_ms() - older_than_s * 1000
    return conn.execute(throttle_events.delete().where(throttle_events.c.at_ms < cutoff)).rowcount


def _human(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def gate(conn: sa.Connection, *, limits: list[tuple[str, str, int]], window_s: int,
         secret: bytes, message: str) -> None:
    """Check, then count, one attempt against each (scope, subject, limit)."""
    for scope, subject, limit in limits:
        check(conn, scope=scope, subject=subject, limit=limit, window_s=window_s, secret=secret,
              message=message)
    for scope, subject, _ in limits:
        record(conn, scope=scope, subject=subject, secret=secret)
