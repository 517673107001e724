"""The gateway's request log writer against a real database (SQLite and PostgreSQL): what it
queues is sealed and written in batches and reads back exactly; a full queue (by entries or by
bytes) drops the log and counts it, never waits; a logged request's ASGI messages are captured
up to the cap, never a header."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.db.schema import request_logs
from faregate.errors import InsufficientQuota
from faregate.gateway.request_log import Capture, RequestLogWriter
from faregate.usage.request_logs import Captured, read_log, sealer_for

SEALER = sealer_for(b"k" * 32)


def _captured(org: str, request: bytes, response: bytes) -> Captured:
    return Captured(f"req_{uuid.uuid4().hex}", org, dt.datetime.now(dt.UTC), "chat", 200,
                    request, len(request), response, len(response))


def _rows(engine: Engine) -> int:
    with engine.begin() as conn:
        return len(conn.execute(request_logs.select()).all())


def test_a_full_queue_drops_and_counts(engine: Engine) -> None:
    db = Database(engine, threads=2)

    async def main() -> RequestLogWriter:
        writer = RequestLogWriter(db, SEALER, max_pending=2, max_pending_bytes=10_000)
        first = _captured("org_a", b'{"model":"m","secret":"first"}', b'{"ok":1}')
        assert writer.submit(first)
        assert writer.submit(_captured("org_a", b"{}", b"{}"))
        assert not writer.submit(_captured("org_a", b"{}", b"{}"))  # full: 2 entries
        assert (writer.pending, writer.dropped) == (2, 1)
        await writer.close()
        assert (writer.pending, writer.written, writer.failed) == (0, 2, 0)
        # Room again once written; a log bigger than the byte bound is dropped.
        assert not writer.submit(_captured("org_a", b"x" * 6000, b"y" * 6000))
        assert writer.dropped == 2
        with engine.begin() as conn:
            entry = read_log(conn, first.request_id, SEALER, organization_id="org_a")
            assert read_log(conn, first.request_id, SEALER, organization_id="org_b") is None
        assert entry is not None
        assert (entry.request, entry.response, entry.model) == (
            b'{"model":"m","secret":"first"}', b'{"ok":1}', "m")
        return writer

    asyncio.run(main())
    assert _rows(engine) == 2
    db.close()


def test_the_writer_task_drains_in_batches(engine: Engine) -> None:
    db = Database(engine, threads=2)

    async def main() -> None:
        writer = RequestLogWriter(db, SEALER, batch=3)
        task = asyncio.create_task(writer.run())
        for i in range(10):
            assert writer.submit(_captured("org_a", f'{{"i":{i}}}'.encode(), b"ok"))
        while writer.written < 10:
            await asyncio.sleep(0.01)
        for i in range(5):  # queued while the task is cancelled: close() writes them
            writer.submit(_captured("org_a", f'{{"j":{i}}}'.encode(), b"ok"))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await writer.close()
        assert (writer.written, writer.dropped, writer.failed) == (15, 0, 0)

    asyncio.run(main())
    assert _rows(engine) == 15
    with engine.begin() as conn:  # stored sealed: no plaintext
        for row in conn.execute(request_logs.select()):
            assert b'"i"' not in row.request_sealed and b'"j"' not in row.request_sealed
    db.close()


def test_a_capture_keeps_bodies_up_to_the_cap_and_no_header() -> None:
    capture = Capture("req_1", "org_a", "chat", max_bytes=10)
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"0123456", "more_body": True},
        {"type": "http.request", "body": b"789abcdef", "more_body": False},
        {"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    async def main() -> None:
        rx, tx = capture.receive(receive), capture.send(send)
        for _ in range(3):
            await rx()
        await tx({"type": "http.response.start", "status": 200,
                  "headers": [(b"authorization", b"Bearer sk-fg-secret")]})
        await tx({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await tx({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    asyncio.run(main())
    assert len(sent) == 3  # passed on unchanged
    done = capture.finish()
    assert (done.request, done.request_bytes) == (b"0123456789", 16)
    assert (done.response, done.response_bytes) == (b"data: 1\n\nd", 23)
    assert done.status_code == 200 and done.truncated
    assert b"sk-fg" not in done.request + done.response


def test_an_error_answered_after_the_relay_is_captured() -> None:
    capture = Capture("req_2", "org_a", "chat", max_bytes=1000)
    capture.failed(InsufficientQuota("You exceeded your current quota."))
    done = capture.finish()
    assert done.status_code == 429
    assert b"insufficient_quota" in done.response
