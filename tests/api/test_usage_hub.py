"""The live feed's hub against a real database (SQLite and PostgreSQL): the streams of one
organization share one poller (one query per tick however many streams, each event encoded
once) and each gets every event once, in order; a late subscriber's catch-up (Last-Event-ID)
joins the shared stream without a gap or a duplicate; a subscriber that falls behind is ended
(`too_slow`) without disturbing the others; the poller stops with its last subscriber. The
tests drive the ticks themselves (`Hub.tick`) except where the background poller is the point;
the event encoding is checked against the documented schema (UsageEventOut)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.api import usage_hub
from faregate.api.app import create_web
from faregate.api.context import ApiContext
from faregate.api.schemas_usage import UsageEventOut
from faregate.api.usage_hub import Hub, Subscriber, encode
from faregate.api.usage_stream import events
from faregate.api_keys.service import issue_key
from faregate.config import Settings
from faregate.db.runner import Database
from faregate.db.schema import usage_records
from faregate.identity.projects import get_default_project
from faregate.identity.users import create_user
from faregate.notify.email import OutboxEmailSender
from faregate.phone.sms import OutboxSmsSender
from faregate.usage.live import newest

NEVER = 3600.0  # the background poller's interval when the test drives the ticks
_n = itertools.count()
_emails = itertools.count()

Event = tuple[str | None, str, dict[str, Any]]  # (id line, event name, data)


def _org(engine: Engine) -> str:
    with engine.begin() as conn:
        return create_user(conn, f"hub{next(_emails)}@example.com").organization_id


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _insert(engine: Engine, org: str, t0: dt.datetime, *records: tuple[int, float]) -> None:
    """Commit usage records (id, seconds after t0) of `org`."""
    with engine.begin() as conn:
        for record_id, seconds in records:
            conn.execute(usage_records.insert().values(
                id=record_id, request_id=f"req_{record_id}_{next(_n)}", organization_id=org,
                api_key_id=None, account_id=1, endpoint="chat", model="m", upstream="u",
                prompt_tokens=3, cached_tokens=0, completion_tokens=2,
                usage_source="upstream", cost_nano=7, charged_nano=7, writeoff_nano=0,
                status="ok", streamed=False, latency_ms=4, settlement_id="stl_x",
                settled_at=t0 + dt.timedelta(seconds=seconds)))


def _parse(raw: bytes) -> list[Event]:
    out: list[Event] = []
    for block in raw.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if not line.startswith(":") and ": " in line)
        if "event" in fields:
            out.append((fields.get("id"), fields["event"], orjson.loads(fields["data"])))
    return out


async def _read(sub: Subscriber) -> list[Event]:
    """What waits for the subscriber now."""
    return _parse(await sub.next(0))


def _ids(got: list[Event]) -> list[tuple[int, bool]]:
    """(record id, sent with an `id:` line) per usage event; the `id:` is the record's."""
    assert all(e[0] is None or e[0] == str(e[2]["id"]) for e in got)
    return [(e[2]["id"], e[0] is not None) for e in got if e[1] == "usage"]


@contextmanager
def _selects_of_usage(engine: Engine) -> Iterator[list[str]]:
    """The SELECTs on usage_records run meanwhile (any thread)."""
    found: list[str] = []

    def seen(*args: Any) -> None:
        sql = str(args[2])
        if sql.lstrip().upper().startswith("SELECT") and "usage_records" in sql:
            found.append(sql)
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        yield found
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


def _close_all(hub: Hub) -> None:
    for feed in list(hub.feeds.values()):
        for sub in list(feed.subscribers):
            sub.close()


def _ctx(db: Database, tmp_path: Path) -> ApiContext:
    return ApiContext(Settings(data_dir=tmp_path), db,
                      OutboxEmailSender(tmp_path / "outbox", "faregate@example.com"),
                      OutboxSmsSender(tmp_path / "outbox"), b"s" * 32, b"p" * 32)


async def test_streams_of_an_organization_share_one_poller(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.engine
    org, other = _org(engine), _org(engine)
    t0 = _now()
    encoded: list[int] = []

    def counting_encode(record: Any) -> usage_hub.Encoded:
        encoded.append(record.id)
        return encode(record)
    monkeypatch.setattr(usage_hub, "encode", counting_encode)
    hub = Hub(db, poll_s=NEVER)
    a1, _ = await hub.subscribe(org, resume_after=None, backlog=0)
    a2, _ = await hub.subscribe(org, resume_after=None, backlog=0)
    b1, _ = await hub.subscribe(other, resume_after=None, backlog=0)
    try:
        assert set(hub.feeds) == {org, other}
        feed, feed_b = hub.feeds[org], hub.feeds[other]
        assert feed.subscribers == [a1, a2] and feed_b.subscribers == [b1]

        # Two subscribers: one query and one encoding per record for both.
        _insert(engine, org, t0, (101, 1), (102, 2))
        _insert(engine, other, t0, (201, 1))
        encoded.clear()
        with _selects_of_usage(engine) as selects:
            await hub.tick(feed)
            await hub.tick(feed_b)
        assert len(selects) == 2 and (feed.polls, feed_b.polls) == (1, 1)
        assert sorted(encoded) == [101, 102, 201]

        # A third subscriber joins; still one query per tick, one encoding per record.
        a3, _ = await hub.subscribe(org, resume_after=None, backlog=0)
        assert feed.subscribers == [a1, a2, a3]
        _insert(engine, org, t0, (103, 3))
        encoded.clear()
        with _selects_of_usage(engine) as selects:
            for _ in range(3):
                await hub.tick(feed)
            _insert(engine, org, t0, (104, 4), (105, 5))
            await hub.tick(feed)
        assert len(selects) == 4 and feed.polls == 5
        assert encoded == [103, 104, 105]

        # Each gets every event once, in order, each with its id.
        everything = [(i, True) for i in (101, 102, 103, 104, 105)]
        assert _ids(await _read(a1)) == everything
        assert _ids(await _read(a2)) == everything
        assert _ids(await _read(a3)) == everything[2:]  # it joined after 102
        assert _ids(await _read(b1)) == [(201, True)]
        assert await _read(a1) == []
    finally:
        _close_all(hub)
    assert hub.feeds == {}


async def test_a_late_subscriber_catches_up_then_joins_without_gap_or_duplicate(
        db: Database) -> None:
    engine = db.engine
    org = _org(engine)
    t0 = _now()
    hub = Hub(db, poll_s=NEVER)
    a, first = await hub.subscribe(org, resume_after=None, backlog=0)
    try:
        assert first == b""
        feed = hub.feeds[org]
        _insert(engine, org, t0, (301, 1), (302, 2), (303, 3))
        await hub.tick(feed)
        assert _ids(await _read(a)) == [(301, True), (302, True), (303, True)]

        # 304 is committed after the shared poller's last query: the new subscriber's catch-up
        # has it, and so will the poller's next query.
        _insert(engine, org, t0, (304, 4))
        b, first = await hub.subscribe(org, resume_after=301, backlog=20)
        assert _ids(_parse(first)) == [(302, True), (303, True), (304, True)]
        _insert(engine, org, t0, (306, 6))
        await hub.tick(feed)
        assert _ids(await _read(a)) == [(304, True), (306, True)]
        assert _ids(await _read(b)) == [(306, True)]  # 304 not again

        # Visible late, behind newer ids: to both without `id:`; 300 is at or below the
        # resume point 301, which the resumed client had already been sent.
        _insert(engine, org, t0, (305, 5), (300, 4.5))
        await hub.tick(feed)
        assert _ids(await _read(a)) == [(300, False), (305, False)]
        assert _ids(await _read(b)) == [(305, False)]
        _insert(engine, org, t0, (307, 7))
        await hub.tick(feed)
        assert _ids(await _read(a)) == [(307, True)]
        assert _ids(await _read(b)) == [(307, True)]

        # Without Last-Event-ID: the newest records first, then only what is new.
        c, first = await hub.subscribe(org, resume_after=None, backlog=2)
        assert _ids(_parse(first)) == [(306, True), (307, True)]
        # an unknown resume point starts like a new viewer
        d, first = await hub.subscribe(org, resume_after=999_999, backlog=1)
        assert _ids(_parse(first)) == [(307, True)]
        _insert(engine, org, t0, (308, 8))
        await hub.tick(feed)
        for sub in (a, b, c, d):
            assert _ids(await _read(sub)) == [(308, True)]
        assert feed.subscribers == [a, b, c, d]
    finally:
        _close_all(hub)
    assert hub.feeds == {}


async def test_a_slow_subscriber_is_ended_without_affecting_the_others(
        db: Database, tmp_path: Path) -> None:
    engine = db.engine
    org = _org(engine)
    t0 = _now()
    hub = Hub(db, poll_s=NEVER, max_behind=3)
    fast, _ = await hub.subscribe(org, resume_after=None, backlog=0)
    slow, _ = await hub.subscribe(org, resume_after=None, backlog=0)
    feed = hub.feeds[org]
    try:
        _insert(engine, org, t0, (401, 1), (402, 2))
        await hub.tick(feed)
        assert _ids(await _read(fast)) == [(401, True), (402, True)]
        assert slow.pending == 2 and slow.ended is None  # not read, within its bound
        _insert(engine, org, t0, (403, 3), (404, 4))
        await hub.tick(feed)
        assert slow.ended == "too_slow" and slow.pending == 0
        assert feed.subscribers == [fast] and hub.feeds[org] is feed
        assert _ids(await _read(fast)) == [(403, True), (404, True)]

        # Its stream says so and ends; the client resumes from the last id it received.
        stream = events(_ctx(db, tmp_path), slow, b"", session_token="", user_id="u",
                        stopping=lambda: False)
        assert (await anext(stream)).startswith(b"retry: 1000\n")
        assert await anext(stream) == b'event: end\ndata: {"reason": "too_slow"}\n\n'
        with pytest.raises(StopAsyncIteration):
            await anext(stream)

        _insert(engine, org, t0, (405, 5))
        await hub.tick(feed)
        assert _ids(await _read(fast)) == [(405, True)]
        assert await slow.next(0) == b""
    finally:
        _close_all(hub)
    assert hub.feeds == {}


async def test_the_poller_stops_when_the_last_stream_closes(db: Database,
                                                            tmp_path: Path) -> None:
    engine = db.engine
    org = _org(engine)
    t0 = _now()
    hub = Hub(db, poll_s=0.02)  # the background poller, for real
    a, _ = await hub.subscribe(org, resume_after=None, backlog=0)
    b, _ = await hub.subscribe(org, resume_after=None, backlog=0)
    feed = hub.feeds[org]
    task = feed.task
    assert task is not None
    _insert(engine, org, t0, (501, 1))
    for sub in (a, b):
        assert _ids(_parse(await sub.next(30))) == [(501, True)]
    a.close()
    a.close()  # leaving twice is leaving once
    assert feed.subscribers == [b] and not task.done()

    # The last one is a stream that ends with the server (its own stream closes it).
    stopping = False
    stream = events(_ctx(db, tmp_path), b, b"", session_token="", user_id="u",
                    stopping=lambda: stopping)
    assert (await anext(stream)).startswith(b"retry: ")
    stopping = True
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert b.closed and hub.feeds == {}
    polls = feed.polls
    await asyncio.wait([task], timeout=30)
    assert task.cancelled()
    with _selects_of_usage(engine) as selects:
        await asyncio.sleep(0.2)  # ten of its intervals
    assert selects == [] and feed.polls == polls

    # The next viewer starts a new feed.
    _insert(engine, org, t0, (502, 2))
    c, first = await hub.subscribe(org, resume_after=None, backlog=1)
    assert _ids(_parse(first)) == [(502, True)]
    new_feed = hub.feeds[org]
    assert new_feed is not feed and new_feed.task is not task
    c.close()
    assert hub.feeds == {}


def test_the_event_encoding_is_the_documented_schema(engine: Engine) -> None:
    t0 = _now()
    with engine.begin() as conn:
        user = create_user(conn, "schema@example.com")
        org = user.organization_id
        project = get_default_project(conn, org).id
        key = issue_key(conn, organization_id=org, user_id=user.id, name="laptop",
                        pepper=b"p" * 32)
    _insert(engine, org, t0, (601, 1))
    with engine.begin() as conn:
        conn.execute(usage_records.insert().values(
            id=602, request_id="req_602", organization_id=org, api_key_id=key.id,
            project_id=project, account_id=1, endpoint="chat", model="gpt-x", upstream="u",
            prompt_tokens=1_000, cached_tokens=200, completion_tokens=30,
            usage_source="upstream", cost_nano=123_456_789_012, charged_nano=100,
            writeoff_nano=123_456_788_912, status="client_disconnected", streamed=True,
            latency_ms=41, settlement_id="stl_y",
            settled_at=t0 + dt.timedelta(seconds=2, microseconds=123_456)))
        records = newest(conn, org, 5)
    assert [r.id for r in records] == [601, 602]
    for rec in records:
        ev = encode(rec)
        assert ev.head == f"id: {rec.id}\n".encode()
        assert ev.body.startswith(b"event: usage\ndata: ") and ev.body.endswith(b"\n\n")
        data = ev.body.removeprefix(b"event: usage\ndata: ").removesuffix(b"\n\n")
        assert b"\n" not in data
        # every field of the schema, nothing else, with the schema's types and values
        assert UsageEventOut.model_validate_json(data).model_dump(mode="json") == \
            orjson.loads(data)
        # byte for byte what pydantic made of the same record (`recent` still does)
        assert data == UsageEventOut.of(rec).model_dump_json().encode()
    with_key = orjson.loads(encode(records[1]).body.split(b"data: ", 1)[1])
    assert with_key["api_key"] == {"id": key.id, "name": "laptop", "redacted": key.redacted}
    assert with_key["project"] == {"id": project, "name": "Default project"}
    assert with_key["cost_usd"] == "123.456789012" and with_key["cost_nano_usd"] == \
        123_456_789_012
    assert with_key["settled_at"].endswith(".123456Z")
    bare = orjson.loads(encode(records[0]).body.split(b"data: ", 1)[1])
    assert bare["api_key"] is None and bare["project"] is None

    # The OpenAPI document names the schema for the stream's events.
    @asynccontextmanager
    async def no_lifespan(app: Any) -> AsyncIterator[None]:
        yield
    doc = create_web(no_lifespan, []).openapi()
    live = doc["paths"]["/api/orgs/{org_id}/usage/live"]["get"]["responses"]["200"]
    assert "UsageEventOut" in live["description"] and "text/event-stream" in live["content"]
    assert set(doc["components"]["schemas"]["UsageEventOut"]["properties"]) == set(with_key)

