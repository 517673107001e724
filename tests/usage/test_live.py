"""The live feed's reader of the newest usage records: a follower sees every record once, also
one that becomes visible after a later one (PostgreSQL commits ids out of order) or that a
process with a slightly slower clock stamped; what a new or returning viewer is shown first;
polling by id and the newest records; names for keys and projects in one query."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.api_keys.service import issue_key
from faregate.db.schema import usage_records
from faregate.identity.projects import get_default_project
from faregate.identity.users import create_user
from faregate.usage.labels import labels
from faregate.usage.live import LOOKBACK, Follower, after, catch_up, newest

T0 = dt.datetime.now(dt.UTC).replace(microsecond=0)
_n = itertools.count()


def _insert(conn: sa.Connection, record_id: int, org: str, at: dt.datetime, *,
            key: str | None = None, project: str | None = None, cost: int = 7) -> None:
    conn.execute(usage_records.insert().values(
        id=record_id, request_id=f"req_{record_id}_{next(_n)}", organization_id=org,
        api_key_id=key, account_id=1, endpoint="chat", model="m", upstream="u",
        prompt_tokens=3, cached_tokens=0, completion_tokens=2, usage_source="upstream",
        cost_nano=cost, charged_nano=cost, writeoff_nano=0, status="ok", streamed=False,
        latency_ms=4, settlement_id="stl_x", settled_at=at, project_id=project))


def _ids(polled: list[Any]) -> list[tuple[int, bool]]:
    return [(rec.id, in_order) for rec, in_order in polled]


def test_follower_sees_late_and_skewed_records_once(engine: Engine) -> None:
    with engine.begin() as conn:
        org = create_user(conn, "live@example.com").organization_id
        other = create_user(conn, "other@example.com").organization_id
        project = get_default_project(conn, org).id
        key = issue_key(conn, organization_id=org, user_id=None, name="laptop",
                        pepper=b"p" * 32)
        _insert(conn, 1000, org, T0, key=key.id, project=project)
        follower, backlog = Follower.start(conn, org, resume_after=None, backlog=5)
        assert [r.id for r in backlog] == [1000]
        assert backlog[0].api_key_name == "laptop" and backlog[0].api_key_redacted == \
            key.redacted and backlog[0].project_name == "Default project"
        assert follower.poll(conn) == []

    def step(*inserts: tuple[int, str, dt.datetime]) -> list[tuple[int, bool]]:
        with engine.begin() as conn:
            for record_id, owner, at in inserts:
                _insert(conn, record_id, owner, at)
        with engine.begin() as conn:
            return _ids(follower.poll(conn))

    assert step((1005, org, T0 + dt.timedelta(seconds=1))) == [(1005, True)]
    # committed after 1005 although its id is lower: shown, out of order
    assert step((1003, org, T0 + dt.timedelta(milliseconds=500))) == [(1003, False)]
    # stamped by a clock 3 s behind: still within the look-back
    assert step((1006, org, T0 - dt.timedelta(seconds=3))) == [(1006, True)]
    # another organization's record is never shown; nothing is shown twice
    assert step((1007, other, T0 + dt.timedelta(seconds=2))) == []
    assert step() == []
    # a record stamped further back than the look-back is past the window (a limitation)
    assert step((1008, org, T0 - LOOKBACK - dt.timedelta(seconds=5))) == []
    # as time moves on, what is behind the window is forgotten
    later = [(2000 + i, org, T0 + dt.timedelta(seconds=10 * (i + 1))) for i in range(3)]
    assert step(*later) == [(2000, True), (2001, True), (2002, True)]
    assert set(follower.seen) == {2002}

    with engine.begin() as conn:
        # resuming after 1005 gives what came after it (in id order), not what came before
        resumed, backlog = Follower.start(conn, org, resume_after=1005, backlog=5)
        assert backlog == []
        assert _ids(resumed.poll(conn)) == [(1006, True), (2000, True), (2001, True),
                                            (2002, True)]
        assert resumed.poll(conn) == []
        # an unknown or foreign id starts fresh, at the newest records
        fresh, backlog = Follower.start(conn, org, resume_after=1007, backlog=2)
        assert [r.id for r in backlog] == [2001, 2002]
        assert fresh.poll(conn) == []


def test_catch_up_of_a_new_or_returning_viewer(engine: Engine) -> None:
    with engine.begin() as conn:
        org = create_user(conn, "catchup@example.com").organization_id
        other = create_user(conn, "catchup2@example.com").organization_id
        empty = catch_up(conn, org, resume_after=None, backlog=5)
        assert (empty.records, empty.floor_id, empty.cursor_id) == ([], 0, 0)
        for i, record_id in enumerate((4000, 4001, 4002, 4003)):
            _insert(conn, record_id, org, T0 + dt.timedelta(seconds=i))
        _insert(conn, 4004, other, T0)
        # a new viewer: the newest `backlog`, and everything after them is news
        fresh = catch_up(conn, org, resume_after=None, backlog=2)
        assert ([r.id for r in fresh.records], fresh.floor_id, fresh.cursor_id) == (
            [4002, 4003], 0, 4003)
        none = catch_up(conn, org, resume_after=None, backlog=0)
        assert (none.records, none.floor_id, none.cursor_id) == ([], 0, 4003)
        # a returning one: what it missed; nothing at or below its resume point again
        back = catch_up(conn, org, resume_after=4001, backlog=2)
        assert ([r.id for r in back.records], back.floor_id, back.cursor_id) == (
            [4002, 4003], 4001, 4003)
        latest = catch_up(conn, org, resume_after=4003, backlog=2)
        assert (latest.records, latest.floor_id, latest.cursor_id) == ([], 4003, 4003)
        # another organization's id, or an unknown one: like a new viewer
        foreign = catch_up(conn, org, resume_after=4004, backlog=1)
        assert ([r.id for r in foreign.records], foreign.floor_id) == ([4003], 0)


def test_after_and_newest(engine: Engine) -> None:
    with engine.begin() as conn:
        org = create_user(conn, "poll@example.com").organization_id
        other = create_user(conn, "poll2@example.com").organization_id
        assert newest(conn, org, 5) == []
        for i, record_id in enumerate((3000, 3001, 3002, 3003)):
            _insert(conn, record_id, org, T0 + dt.timedelta(seconds=i))
        _insert(conn, 3004, other, T0)
        assert [r.id for r in newest(conn, org, 2)] == [3002, 3003]
        page = after(conn, org, 3000, 2)
        assert page is not None
        assert ([r.id for r in page[0]], page[1]) == ([3001, 3002], True)
        page = after(conn, org, 3002, 2)
        assert page is not None
        assert ([r.id for r in page[0]], page[1]) == ([3003], False)
        assert after(conn, org, 3004, 2) is None  # another organization's record
        assert after(conn, org, 99999, 2) is None


def test_labels_in_one_query(engine: Engine) -> None:
    with engine.begin() as conn:
        user = create_user(conn, "names@example.com")
        stranger = create_user(conn, "stranger@example.com")
        org = user.organization_id
        project = get_default_project(conn, org).id
        mine = issue_key(conn, organization_id=org, user_id=user.id, name="ci",
                         pepper=b"p" * 32)
        theirs = issue_key(conn, organization_id=stranger.organization_id, user_id=None,
                           name="secret", pepper=b"p" * 32)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.begin() as conn:
            found = labels(conn, org, api_key_ids={mine.id, theirs.id, "", "key_nope"},
                           project_ids={project, ""})
            assert labels(conn, org, api_key_ids=set(), project_ids=set()).api_keys == {}
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len([s for s in statements if "api_keys" in s or "projects" in s]) == 1
    assert set(found.api_keys) == {mine.id}  # another organization's key is not named
    assert found.api_keys[mine.id].name == "ci"
    assert found.api_keys[mine.id].redacted == mine.redacted
    assert found.projects == {project: "Default project"}
