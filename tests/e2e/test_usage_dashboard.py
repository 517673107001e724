"""The dashboard's usage endpoints against a real server, real /v1 calls and a real database:
series, summary and CSV equal the sums of the usage records for the same filters, to the unit;
the live feed (SSE) shows a new call within 2 seconds, resumes without repeating, and ends when
its client, its membership or its server goes; polling works; members read, others get 404."""

from __future__ import annotations

import csv
import datetime as dt
import io
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx2
import sqlalchemy as sa

from faregate.catalog.service import ModelPrice
from faregate.db.schema import usage_records
from faregate.ledger.transfers import grant
from faregate.tiers.service import set_override
from tests.e2e.api_client import ApiClient, last_link_token
from tests.e2e.api_client import verified_user as _verified
from tests.e2e.sse_client import SseStream
from tests.harness import Deployment, Proc

ONE_DOLLAR = 1_000_000_000
NANO = Decimal(1_000_000_000)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
SUMS = ("requests", "failed_requests", "input_tokens", "cached_tokens", "output_tokens",
        "cost_nano_usd", "charged_nano_usd", "writeoff_nano_usd")
FORMULA_NAME = "=HYPERLINK(\"http://x\")"


@dataclass
class Org:
    dep: Deployment
    server: Proc
    owner: ApiClient
    id: str
    default_project: str
    project: str
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (id, secret)

    @property
    def base(self) -> str:
        return self.server.base_url

    def call(self, key: str, *, model: str = "faregate-dev", stream: bool = False,
             tokens: int = 6) -> str:
        """One /v1 call with the key of that name; its request id."""
        secret = self.keys[key][1]
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx2.Client(base_url=self.base, timeout=30) as http:
            if model.endswith("embed"):
                r = http.post("/v1/embeddings", headers=headers,
                              json={"model": model, "input": ["usage", "dashboard"]})
                assert r.status_code == 200, r.text
                return str(r.headers["x-request-id"])
            body = {"model": model, "max_tokens": tokens, "stream": stream,
                    "messages": [{"role": "user", "content": "count the calls"}]}
            with http.stream("POST", "/v1/chat/completions", headers=headers, json=body) as r:
                r.read()
                assert r.status_code == 200, r.text
                return str(r.headers["x-request-id"])

    def stream(self, client: ApiClient | None = None, query: str = "backlog=0",
               headers: dict[str, str] | None = None) -> SseStream:
        c = client or self.owner
        return SseStream(self.base, f"/api/orgs/{self.id}/usage/live?{query}",
                         cookies=dict(c.http.cookies), headers=headers)


def _org(dep: Deployment, email: str = "owner@example.com", *, flaky: bool = False) -> Org:
    if flaky:  # an upstream that dies mid-stream: charged, status upstream_error
        dm = dep.start_devmodel()
        dep.add_upstream("flaky", dm.base_url + "/v1", {"flaky": "faregate-dev:die_after=3"},
                         ModelPrice(700_000_000, 300_000_000, 2_100_000_000))
    server = dep.start_server()
    owner = _verified(dep, server.base_url, email)
    org_id = owner.get("/api/me").json()["personal_organization_id"]
    with dep.engine.begin() as conn:
        grant(conn, org_id, 5 * ONE_DOLLAR, actor="test", reason="test")
        set_override(conn, org_id, 100)  # Unlimited: these many calls are not about RPM
    default = owner.get(f"/api/orgs/{org_id}/projects").json()["data"][0]["id"]
    project = owner.post(f"/api/orgs/{org_id}/projects", {"name": "Research"}).json()["id"]
    org = Org(dep, server, owner, org_id, default, project)
    for name, proj in (("alpha", default), ("beta", project), (FORMULA_NAME, default)):
        made = owner.post(f"/api/orgs/{org_id}/keys", {"name": name, "project_id": proj})
        assert made.status_code == 201, made.text
        org.keys[name] = (made.json()["id"], made.json()["key"])
    return org


def _records(dep: Deployment, org_id: str) -> list[dict[str, Any]]:
    r = usage_records.c
    with dep.engine.begin() as conn:
        rows = conn.execute(sa.select(usage_records).where(r.organization_id == org_id)
                            .order_by(r.id)).mappings().all()
    return [dict(row) for row in rows]


def _sums(records: list[dict[str, Any]]) -> tuple[int, ...]:
    return (len(records), sum(r["status"] != "ok" for r in records),
            sum(r["prompt_tokens"] for r in records), sum(r["cached_tokens"] for r in records),
            sum(r["completion_tokens"] for r in records), sum(r["cost_nano"] for r in records),
            sum(r["charged_nano"] for r in records), sum(r["writeoff_nano"] for r in records))


def _expected(records: list[dict[str, Any]], group_by: tuple[str, ...],
              width_s: int | None = None) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """Sums per (bucket start, *group values), computed here from the raw records."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        seconds = (rec["settled_at"] - EPOCH) // dt.timedelta(seconds=1)
        start = seconds - seconds % width_s if width_s else None
        groups[(start, *(rec[k] for k in group_by))].append(rec)
    return {k: _sums(v) for k, v in groups.items()}


def _row_sums(row: dict[str, Any]) -> tuple[int, ...]:
    # the decimal strings are the same amounts as the integers, exactly
    for name in ("cost", "charged", "writeoff"):
        assert Decimal(row[f"{name}_usd"]) * NANO == row[f"{name}_nano_usd"]
    return tuple(row[k] for k in SUMS)


def _wait_rolled_up(org: Org, expected_requests: int) -> None:
    deadline = time.monotonic() + 20
    got = -1
    while time.monotonic() < deadline:
        got = org.owner.get(f"/api/orgs/{org.id}/usage/summary").json()["total"]["requests"]
        if got == expected_requests:
            return
        time.sleep(0.2)
    raise AssertionError(f"the rollups hold {got} requests, not {expected_requests}")


def _workload(org: Org) -> None:
    for i in range(3):
        org.call("alpha", stream=bool(i % 2), tokens=5 + i)
    org.call("alpha", model="faregate-dev-embed")
    for i in range(2):
        org.call("beta", tokens=9 + i, stream=True)
    org.call(FORMULA_NAME)


def test_series_summary_and_csv_equal_the_usage_records(any_dep: Deployment) -> None:
    org = _org(any_dep, flaky=True)
    _workload(org)
    org.call("beta", model="flaky", stream=True, tokens=20)  # dies after 3 chunks: failed
    records = _records(any_dep, org.id)
    assert len(records) == 8 and any(r["status"] != "ok" for r in records)
    _wait_rolled_up(org, len(records))
    now = int(time.time())
    today = dt.datetime.now(dt.UTC).date()
    days = f"start={today - dt.timedelta(days=1)}&end={today}"
    url = f"/api/orgs/{org.id}/usage"

    for group_by in ((), ("model",), ("api_key_id",), ("project_id",), ("model", "project_id"),
                     ("endpoint",)):
        gb = "".join(f"&group_by={k}" for k in group_by)
        want = _expected(records, group_by)
        summary = org.owner.get(f"{url}/summary?{days}{gb}").json()
        assert summary["group_by"] == list(group_by)
        got = {(None, *(row["group"][k] for k in group_by)): _row_sums(row)
               for row in summary["data"]}
        assert got == want, group_by
        assert _row_sums(summary["total"]) == _sums(records)
        for width, seconds, span in (("1d", 86400, days), ("1h", 3600,
                                     f"start={now - 7200}&end={now + 3600}"),
                                     ("1m", 60, f"start={now - 3600}&end={now + 60}")):
            series = org.owner.get(f"{url}/series?{span}&width={width}{gb}").json()
            assert series["width"] == width
            starts = [b["start"] for b in series["buckets"]]
            assert starts == list(range(starts[0], starts[-1] + seconds, seconds))
            got = {(b["start"], *(row["group"][k] for k in group_by)): _row_sums(row)
                   for b in series["buckets"] for row in b["results"]}
            assert got == _expected(records, group_by, seconds), (group_by, width)

    # Filters select exactly the records they name.
    alpha_id, beta_id = org.keys["alpha"][0], org.keys["beta"][0]
    for query, keep in (
            (f"api_key_id={alpha_id}", lambda r: r["api_key_id"] == alpha_id),
            (f"api_key_id={alpha_id},{beta_id}", lambda r: r["api_key_id"] in (alpha_id,
                                                                             beta_id)),
            (f"project_id={org.project}", lambda r: r["project_id"] == org.project),
            ("model=faregate-dev-embed", lambda r: r["model"] == "faregate-dev-embed"),
            ("model=faregate-dev&endpoint=chat", lambda r: r["model"] == "faregate-dev"),
            (f"project_id={org.default_project}&model=faregate-dev",
             lambda r: r["project_id"] == org.default_project and r["model"] == "faregate-dev")):
        kept = [r for r in records if keep(r)]
        assert kept, query
        summary = org.owner.get(f"{url}/summary?{days}&{query}").json()
        assert _row_sums(summary["total"]) == _sums(kept), query
        series = org.owner.get(f"{url}/series?{days}&{query}&group_by=api_key_id").json()
        got = {(b["start"], row["group"]["api_key_id"]): _row_sums(row)
               for b in series["buckets"] for row in b["results"]}
        assert got == _expected(kept, ("api_key_id",), 86400), query

    # Display names for keys and projects.
    series = org.owner.get(f"{url}/series?{days}&group_by=api_key_id,project_id").json()
    names = series["names"]
    assert names["api_keys"][alpha_id]["name"] == "alpha"
    assert names["api_keys"][alpha_id]["redacted"].startswith("sk-fg-")
    assert names["api_keys"][alpha_id]["redacted"] != org.keys["alpha"][1]
    assert names["projects"][org.project]["name"] == "Research"

    # The CSV: one line per bucket x group, exact decimal USD, totals equal the records.
    r = org.owner.get(f"{url}/export.csv?{days}&width=1h&group_by=api_key_id&group_by=model")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith("attachment; filename=")
    lines = list(csv.DictReader(io.StringIO(r.text)))
    assert list(lines[0]) == ["bucket_start", "bucket_end", "api_key_id", "api_key_name",
                              "api_key_redacted", "model", "requests", "failed_requests",
                              "input_tokens", "cached_tokens", "output_tokens", "cost_usd",
                              "charged_usd", "writeoff_usd"]
    want = _expected(records, ("api_key_id", "model"), 3600)
    assert len(lines) == len(want)
    totals = _sums(records)
    assert sum(int(x["requests"]) for x in lines) == totals[0]
    assert sum(int(x["input_tokens"]) for x in lines) == totals[2]
    assert sum(Decimal(x["cost_usd"]) for x in lines) * NANO == totals[5]
    assert sum(Decimal(x["charged_usd"]) for x in lines) * NANO == totals[6]
    for x in lines:
        start = int(dt.datetime.fromisoformat(x["bucket_start"]).timestamp())
        assert want[(start, x["api_key_id"], x["model"])][5] == Decimal(x["cost_usd"]) * NANO
    # a key name that a spreadsheet would run as a formula is defused
    assert {x["api_key_name"] for x in lines} == {"alpha", "beta", "'" + FORMULA_NAME}
    assert any_dep.verify() == []


def test_ranges_are_checked_with_readable_errors(sqlite_dep: Deployment) -> None:
    org = _org(sqlite_dep)
    url = f"/api/orgs/{org.id}/usage"
    cases = {
        "series?width=1h&start=2026-01-01&end=2026-02-01": "at most 14 days",
        "series?width=1d&start=2020-01-01&end=2026-01-01": "at most 400 days",
        "series?width=1m&start=2026-01-01&end=2026-01-03": "at most 1 day",
        "summary?start=2026-01-05&end=2026-01-01": "start must be before end",
        "summary?start=yesterday": "expected a date (YYYY-MM-DD)",
        "summary?start=2026-01-01T00:00:00": "with a time zone",
        "series?width=2h": "width",
        "summary?group_by=colour": "cannot group by 'colour'",
        "recent?after=999999": "no usage record 999999",
    }
    for query, message in cases.items():
        r = org.owner.get(f"{url}/{query}")
        assert r.status_code == 400, (query, r.text)
        assert message in r.json()["error"]["message"], (query, r.text)
    # Dates, ISO times and POSIX seconds; a date as `end` includes that day.
    a = org.owner.get(f"{url}/series?start=2026-01-01&end=2026-01-31&width=1d").json()
    assert len(a["buckets"]) == 31
    assert a["start"] == int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())
    b = org.owner.get(f"{url}/series?start=2026-01-01T00:00:00Z&end={a['end']}").json()
    assert (b["start"], b["end"]) == (a["start"], a["end"])
    # The defaults: the last 30 days by day, the last day by hour.
    assert len(org.owner.get(f"{url}/series").json()["buckets"]) == 30
    assert len(org.owner.get(f"{url}/series?width=1h").json()["buckets"]) == 24
    empty = org.owner.get(f"{url}/summary").json()
    assert empty["data"] == [] and empty["total"]["cost_usd"] == "0"
    paths = org.owner.get("/openapi.json").json()["paths"]
    for endpoint in ("series", "summary", "export.csv", "live", "recent"):
        assert f"/api/orgs/{{org_id}}/usage/{endpoint}" in paths


def _usage_events(stream: SseStream, within_s: float) -> list[dict[str, Any]]:
    return [ev.json() | {"_id": ev.id} for ev in stream.events(within_s)]


def test_live_feed_shows_a_call_within_two_seconds_and_resumes(any_dep: Deployment) -> None:
    org = _org(any_dep)
    org.call("alpha")
    stream = org.stream(query="backlog=5")
    try:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        hello = stream.next(5)
        assert hello is not None and hello.event == "comment"
        backlog = stream.next(5)  # the call made before the stream opened
        assert backlog is not None and backlog.event == "usage"
        first_id = backlog.json()["id"]
        for key in ("alpha", "beta"):
            rid = org.call(key, stream=key == "beta")
            # The deadline: the event must arrive within 2 s of the call's answer.
            ev = stream.wait_for(2.0, lambda e, rid=rid: e.event == "usage"
                                 and e.json()["request_id"] == rid)
            assert ev is not None, f"no live event for {rid} within 2 s"
            data = ev.json()
            assert ev.id == str(data["id"]) and data["id"] > first_id
            record = next(r for r in _records(any_dep, org.id) if r["request_id"] == rid)
            assert data["cost_nano_usd"] == record["cost_nano"]
            assert Decimal(data["cost_usd"]) * NANO == record["cost_nano"]
            assert data["charged_nano_usd"] == record["charged_nano"]
            assert (data["input_tokens"], data["output_tokens"]) == (
                record["prompt_tokens"], record["completion_tokens"])
            assert data["api_key"]["id"] == org.keys[key][0]
            assert data["api_key"]["name"] == key
            assert data["api_key"]["redacted"].startswith("sk-fg-")
            assert data["project"]["id"] == (org.default_project if key == "alpha"
                                             else org.project)
            assert data["project"]["name"] in ("Default project", "Research")
            assert data["status"] == "ok" and data["model"] == "faregate-dev"
            assert data["endpoint"] == "chat" and data["latency_ms"] >= 0
            assert data["streamed"] is (key == "beta")
            last_id = ev.id
    finally:
        stream.close()

    # While no one listens, two more calls; a reconnection with Last-Event-ID gets exactly
    # those, in order, and nothing it already had.
    missed = [org.call("alpha"), org.call("beta", model="faregate-dev-embed")]
    resumed = org.stream(query="backlog=20", headers={"Last-Event-ID": str(last_id)})
    try:
        got = _usage_events(resumed, 1.5)
        assert [e["request_id"] for e in got] == missed
        assert all(e["_id"] == str(e["id"]) and e["id"] > int(last_id) for e in got)
        assert [e["id"] for e in got] == sorted(e["id"] for e in got)
    finally:
        resumed.close()

    # Without Last-Event-ID, the backlog is the newest records, oldest first.
    fresh = org.stream(query="backlog=2")
    try:
        assert [e["request_id"] for e in _usage_events(fresh, 1.0)] == missed
    finally:
        fresh.close()


def _until(stream: SseStream, request_ids: list[str], timeout_s: float) -> list[dict[str, Any]]:
    """Usage events until every one of `request_ids` came (or `timeout_s`), then one more
    second: anything sent twice would show."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while not set(request_ids) <= {e["request_id"] for e in got}:
        ev = stream.next(max(0.0, deadline - time.monotonic()))
        if ev is None:
            break
        if ev.event == "usage":
            got.append(ev.json() | {"_id": ev.id})
    return got + _usage_events(stream, 1.0)


def test_live_streams_of_one_organization_each_get_every_call_once(
        any_dep: Deployment) -> None:
    """The server polls once per organization for all its streams; each stream, also one that
    joins late with Last-Event-ID, still gets every call exactly once, in order."""
    org = _org(any_dep)
    member, _ = _invite_member(org, "member@example.com")
    first, second = org.stream(), org.stream(member)
    late: SseStream | None = None
    try:
        assert (first.status, second.status) == (200, 200)
        calls = [org.call("alpha"), org.call("beta", stream=True), org.call("alpha")]
        seen: dict[str, int] = {}
        for s in (first, second):
            got = _until(s, calls, 5.0)
            assert [e["request_id"] for e in got] == calls
            assert [e["_id"] for e in got] == [str(e["id"]) for e in got]
            seen = {e["request_id"]: e["id"] for e in got}
        # Joins after the first call, while the others are open: the two it missed, then
        # what follows, each once.
        late = org.stream(query="backlog=20", headers={"Last-Event-ID": str(seen[calls[0]])})
        more = [org.call("beta"), org.call("alpha", model="faregate-dev-embed")]
        for s, expected in ((late, calls[1:] + more), (first, more), (second, more)):
            got = _until(s, expected, 5.0)
            assert [e["request_id"] for e in got] == expected
            assert [e["id"] for e in got] == sorted(e["id"] for e in got)
    finally:
        for opened in (first, second, late):
            if opened is not None:
                opened.close()


def test_polling_recent(sqlite_dep: Deployment) -> None:
    org = _org(sqlite_dep)
    url = f"/api/orgs/{org.id}/usage/recent"
    empty = org.owner.get(url).json()
    assert empty == {"object": "list", "data": [], "has_more": False, "last_id": None}
    calls = [org.call("alpha"), org.call("beta"), org.call("alpha", stream=True)]
    newest = org.owner.get(f"{url}?limit=2").json()
    assert [e["request_id"] for e in newest["data"]] == calls[1:]
    first = org.owner.get(f"{url}?after={newest['data'][0]['id']}&limit=5").json()
    assert [e["request_id"] for e in first["data"]] == calls[2:]
    assert first["has_more"] is False and first["last_id"] == first["data"][-1]["id"]
    all_ids = [e["id"] for e in org.owner.get(f"{url}?limit=10").json()["data"]]
    page = org.owner.get(f"{url}?after={all_ids[0]}&limit=1").json()
    assert [e["id"] for e in page["data"]] == all_ids[1:2] and page["has_more"] is True
    page = org.owner.get(f"{url}?after={page['last_id']}&limit=1").json()
    assert [e["id"] for e in page["data"]] == all_ids[2:3] and page["has_more"] is False
    again = org.owner.get(f"{url}?after={page['last_id']}").json()
    assert again["data"] == [] and again["last_id"] == page["last_id"]
    new = org.call("beta")
    after_new = org.owner.get(f"{url}?after={page['last_id']}").json()
    assert [e["request_id"] for e in after_new["data"]] == [new]
    # an id of another organization is unknown here
    other = _org(sqlite_dep, "other@example.com")
    other.call("alpha")
    theirs = other.owner.get(f"/api/orgs/{other.id}/usage/recent").json()["data"][0]["id"]
    assert org.owner.get(f"{url}?after={theirs}").status_code == 400


def _invite_member(org: Org, email: str) -> tuple[ApiClient, str]:
    assert org.owner.post(f"/api/orgs/{org.id}/invitations", {"email": email}).status_code \
        == 201
    member = _verified(org.dep, org.base, email)
    token = last_link_token(org.dep.data_dir, email, "/invitations/accept")
    assert member.post("/api/invitations/accept", {"token": token}).status_code == 200
    return member, member.get("/api/me").json()["id"]


def test_members_read_usage_others_get_404_and_removal_ends_the_stream(
        sqlite_dep: Deployment) -> None:
    org = _org(sqlite_dep)
    org.call("alpha")
    member, member_id = _invite_member(org, "member@example.com")
    outsider = _verified(sqlite_dep, org.base, "outsider@example.com")
    url = f"/api/orgs/{org.id}/usage"
    for path in ("series", "summary", "export.csv", "recent"):
        assert member.get(f"{url}/{path}").status_code == 200, path
        r = outsider.get(f"{url}/{path}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "organization_not_found"
    denied = org.stream(outsider)
    assert denied.status == 404 and b"organization_not_found" in denied.body()
    denied.close()
    anonymous = SseStream(org.base, f"{url}/live")
    assert anonymous.status == 401
    anonymous.close()

    watching = org.stream(member)
    try:
        assert watching.status == 200
        rid = org.call("beta")
        seen = watching.wait_for(2.0, lambda e: e.event == "usage"
                                 and e.json()["request_id"] == rid)
        assert seen is not None
        assert org.owner.delete(f"/api/orgs/{org.id}/members/{member_id}").status_code == 204
        # The stream checks its session and membership every 15 s.
        ended = watching.wait_for(20.0, lambda e: e.event == "end")
        assert ended is not None and "not_a_member" in ended.data
        assert watching.next(5) is None and watching.eof
    finally:
        watching.close()
    assert member.get(f"{url}/summary").status_code == 404


def _open_until(open_stream: Callable[[], SseStream], timeout_s: float) -> SseStream:
    deadline = time.monotonic() + timeout_s
    while True:
        s = open_stream()
        if s.status == 200 or time.monotonic() > deadline:
            return s
        s.close()
        time.sleep(0.1)


def test_open_streams_are_limited_per_user(sqlite_dep: Deployment) -> None:
    org = _org(sqlite_dep)
    member, _ = _invite_member(org, "member@example.com")
    streams = [org.stream() for _ in range(5)]
    try:
        assert [s.status for s in streams] == [200] * 5
        sixth = org.stream()
        assert sixth.status == 429
        body = sixth.body().decode()
        assert "too_many_streams" in body and "5 live usage streams" in body
        sixth.close()
        # another user of the same organization has their own allowance
        theirs = org.stream(member)
        assert theirs.status == 200
        theirs.close()
        # a closed stream gives its slot back
        streams.pop().close()
        again = _open_until(org.stream, 5.0)
        assert again.status == 200
        streams.append(again)
        # and every stream still gets the news
        rid = org.call("alpha")
        for s in streams:
            assert s.wait_for(2.0, lambda e: e.event == "usage"
                              and e.json()["request_id"] == rid) is not None
    finally:
        for s in streams:
            s.close()


def test_server_shutdown_ends_open_streams(sqlite_dep: Deployment) -> None:
    org = _org(sqlite_dep)
    streams = [org.stream() for _ in range(2)]
    assert [s.status for s in streams] == [200, 200]
    proc = org.server.proc
    proc.send_signal(signal.SIGTERM)
    try:
        for s in streams:  # each ends (the server closes it) well before any grace period
            deadline = time.monotonic() + 10
            while not s.eof and time.monotonic() < deadline:
                s.next(deadline - time.monotonic())
            assert s.eof
        assert proc.wait(10) in (0, -signal.SIGTERM)
    finally:
        for s in streams:
            s.close()

