"""Request log retention on SQLite and PostgreSQL: the job deletes every log older than the
retention, batch by batch, and nothing younger."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.db.schema import request_logs
from faregate.usage.request_logs import Captured, sealed_rows, sealer_for, write_logs
from faregate.worker.log_jobs import prune_request_logs

SEALER = sealer_for(b"k" * 32)


def _log(rid: str, age: dt.timedelta, now: dt.datetime) -> Captured:
    return Captured(rid, "org_a", now - age, "chat", 200, b"{}", 2, b"{}", 2)


def test_logs_past_the_retention_are_deleted_in_batches(engine: Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    old = [_log(f"req_old{i}", dt.timedelta(days=7, minutes=1 + i), now) for i in range(5)]
    young = [_log("req_young", dt.timedelta(days=6, hours=23), now),
             _log("req_new", dt.timedelta(0), now)]
    with engine.begin() as conn:
        write_logs(conn, sealed_rows(old + young, SEALER))
    db = Database(engine, threads=1)
    deleted = asyncio.run(prune_request_logs(db, retention_days=7, now=now, batch=2))
    again = asyncio.run(prune_request_logs(db, retention_days=7, now=now, batch=2))
    db.close()
    assert (deleted, again) == (5, 0)
    with engine.begin() as conn:
        left = {r.request_id for r in conn.execute(request_logs.select())}
    assert left == {"req_young", "req_new"}
