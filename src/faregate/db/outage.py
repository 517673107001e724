"""Which database errors mean "the database cannot be reached right now" (a restart, a
failover, a cut connection, an exhausted pool) rather than a bug: callers answer 503 and the
client retries; the server recovers by itself once new connections succeed (on a disconnect
SQLAlchemy discards the pool's older connections)."""

from __future__ import annotations

from sqlalchemy import exc

UNAVAILABLE: tuple[type[Exception], ...] = (
    exc.OperationalError, exc.InterfaceError, exc.TimeoutError, exc.DisconnectionError)
