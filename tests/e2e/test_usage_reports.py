"""OpenAI's organization usage and costs APIs, end to end: after a mixed workload (keys in two
projects, chat and embeddings, streaming and not, upstream failures, a stream that dies, clients
that walk away, requests refused over the balance and over a key's limit), every answer of
/v1/organization/usage/{completions,embeddings} and /v1/organization/costs equals, to the unit,
the sums of the usage records for the same filter, and the costs equal the ledger's usage
debits (per organization, and per key and project through the keys' spend-limit debits).
Every answer validates against OpenAI's published schema; the official SDK reads them."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import httpx2
import openai
import orjson
import pytest
import sqlalchemy as sa

from faregate.api_keys.service import KeySpec
from faregate.db.schema import accounts, transfers, usage_records
from faregate.identity.projects import add_project, get_default_project
from faregate.identity.users import User
from faregate.ledger.accounts import org_account_id
from faregate.usage.rollup import watermark
from tests.e2e.fixtures_gateway import DEV_CHAT_PRICE, Gateway, running_gateway
from tests.e2e.openai_spec import assert_valid
from tests.harness import Deployment

pytestmark = pytest.mark.timeout(300)

ALIASES = {"dev-die": "faregate-dev:die_after=3", "dev-fail": "faregate-dev:fail=500"}
CHAT_ENDPOINTS = ("chat", "completions", "responses")
DAY, HOUR, MINUTE = 86_400, 3_600, 60
WIDTH_S = {"1d": DAY, "1h": HOUR, "1m": MINUTE}
NANO = Decimal(10**9)


# --- the workload ----------------------------------------------------------------------------

@dataclass
class Org:
    user: User
    admin: str
    keys: dict[str, tuple[str, str]]  # name -> (key id, key)
    projects: dict[str, str]  # name -> project id


def _org(dep: Deployment, email: str, grant_nano: int) -> Org:
    user = dep.new_user(email, grant_nano)
    with dep.engine.begin() as conn:
        default = get_default_project(conn, user.organization_id).id
        research = add_project(conn, user.organization_id, "research").id
    day = 10**12  # every key has a (large) daily limit: its ledger debits give per-key sums
    specs = {"a1": KeySpec("a1", project_id=default, spend_limit_nano=day,
                           spend_limit_period="day"),
             "a2": KeySpec("a2", project_id=default, spend_limit_nano=day,
                           spend_limit_period="day"),
             "r1": KeySpec("r1", project_id=research, spend_limit_nano=day,
                           spend_limit_period="day"),
             # a tiny limit: refused with 429 after its first request or two
             "r2": KeySpec("r2", project_id=research, spend_limit_nano=60_000,
                           spend_limit_period="day")}
    keys = {name: dep.new_key(user, spec) for name, spec in specs.items()}
    _, admin = dep.new_key(user, KeySpec("admin", kind="admin"))
    return Org(user, admin, keys, {"default": default, "research": research})


def _body(rng: random.Random) -> tuple[str, dict[str, Any], int | None]:
    """(path, body, abort after N events) of one random request."""
    words = " ".join(rng.choice(["fare", "gate", "tram", "ticket"]) for _ in range(
        rng.randrange(1, 30)))
    kind = rng.choice(["chat", "chat", "chat_stream", "chat_stream", "completions",
                       "responses", "embeddings", "embeddings", "die", "fail", "walk_away"])
    if kind == "embeddings":
        return "/v1/embeddings", {"model": "faregate-dev-embed",
                                  "input": [words] * rng.randrange(1, 4)}, None
    if kind == "completions":
        return "/v1/completions", {"model": "faregate-dev", "prompt": words,
                                   "max_tokens": rng.randrange(1, 30),
                                   "stream": rng.random() < 0.5}, None
    if kind == "responses":
        return "/v1/responses", {"model": "faregate-dev", "input": words,
                                 "max_output_tokens": 16}, None
    model = {"die": "dev-die", "fail": "dev-fail", "walk_away": "dev-slow"}.get(
        kind, "faregate-dev")
    stream = kind in ("chat_stream", "die", "walk_away")
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": words}],
                            "max_tokens": 60 if kind == "walk_away" else rng.randrange(1, 40),
                            "stream": stream}
    if stream and rng.random() < 0.5:
        body["stream_options"] = {"include_usage": True}
    return "/v1/chat/completions", body, (2 if kind == "walk_away" else None)


async def _one(session: aiohttp.ClientSession, base: str, key: str, path: str,
               body: dict[str, Any], abort_after: int | None) -> int:
    async with session.post(base + path, data=orjson.dumps(body), headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"}) as resp:
        if abort_after is None or resp.status != 200:
            await resp.read()
            return resp.status
        events = 0
        async for _ in resp.content.iter_any():
            events += 1
            if events >= abort_after:
                resp.close()  # walk away mid-stream
                break
        return resp.status


async def _workload(base: str, plan: list[tuple[str, str, dict[str, Any], int | None]]
                    ) -> list[int]:
    sem = asyncio.Semaphore(16)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def go(item: tuple[str, str, dict[str, Any], int | None]) -> int:
            async with sem:
                try:
                    return await _one(session, base, *item)
                except aiohttp.ClientError:
                    return -1  # a stream the upstream killed
        return await asyncio.gather(*(go(item) for item in plan))


def _wait_for_rollups(dep: Deployment) -> None:
    deadline = time.monotonic() + 60
    while True:
        with dep.engine.connect() as conn:
            done = watermark(conn).records
            total = conn.execute(sa.select(sa.func.count()).select_from(usage_records)
                                 ).scalar_one()
        if done == total:
            return
        assert time.monotonic() < deadline, f"rollups stuck at {done} of {total} records"
        time.sleep(0.1)


# --- what the answers must be, from the usage records -------------------------------------------

@dataclass(frozen=True)
class Rec:
    t: int
    project_id: str | None
    api_key_id: str | None
    model: str
    endpoint: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    charged_nano: int


def _records(dep: Deployment, org_id: str) -> list[Rec]:
    r = usage_records.c
    with dep.engine.connect() as conn:
        rows = conn.execute(sa.select(r.settled_at, r.project_id, r.api_key_id, r.model,
                                      r.endpoint, r.prompt_tokens, r.cached_tokens,
                                      r.completion_tokens, r.charged_nano)
                            .where(r.organization_id == org_id)).all()
    return [Rec(int(row[0].timestamp()), *row[1:]) for row in rows]


GROUP_FIELD = {"project_id": "project_id", "api_key_id": "api_key_id", "model": "model",
               "line_item": "model"}
FILTER_FIELD = {"project_ids": "project_id", "api_key_ids": "api_key_id", "models": "model",
                "line_items": "model"}


def _expected(kind: str, recs: list[Rec], *, start: int, end: int, width: str, limit: int,
              group_by: tuple[str, ...], filters: dict[str, list[str]]
              ) -> tuple[list[int], dict[tuple[Any, ...], tuple[Any, ...]]]:
    w = WIDTH_S[width]
    first = start - start % w
    starts = list(range(first, end, w))[:limit]
    out: dict[tuple[Any, ...], list[Any]] = {}
    for rec in recs:
        if kind == "completions" and rec.endpoint not in CHAT_ENDPOINTS:
            continue
        if kind == "embeddings" and rec.endpoint != "embeddings":
            continue
        if any(getattr(rec, FILTER_FIELD[f]) not in vals for f, vals in filters.items()):
            continue
        b = rec.t - rec.t % w
        if not starts or not starts[0] <= b <= starts[-1]:
            continue
        key = (b, *(getattr(rec, GROUP_FIELD[g]) for g in group_by))
        acc = out.setdefault(key, [0, 0, 0, 0, 0])
        for i, v in enumerate((rec.input_tokens, rec.cached_tokens, rec.output_tokens, 1,
                               rec.charged_nano)):
            acc[i] += v
    if kind == "costs":
        return starts, {k: (Decimal(v[4]) / NANO,) for k, v in out.items()}
    if kind == "embeddings":
        return starts, {k: (v[0], v[3]) for k, v in out.items()}
    return starts, {k: (v[0], v[1], v[2], v[3]) for k, v in out.items()}


def _flatten(kind: str, page: dict[str, Any], group_by: tuple[str, ...]
             ) -> tuple[list[int], dict[tuple[Any, ...], tuple[Any, ...]]]:
    starts, out = [], {}
    for bucket in page["data"]:
        starts.append(bucket["start_time"])
        assert bucket["end_time"] - bucket["start_time"] in WIDTH_S.values()
        for res in bucket["results"]:
            key = (bucket["start_time"], *(res[g] for g in group_by))
            assert key not in out, "one result per group and bucket"
            for field in {"project_id", "api_key_id", "model", "line_item"} - set(group_by):
                assert res.get(field) is None, f"{field} is null unless grouped by"
            if kind == "costs":
                assert res["amount"]["currency"] == "usd"
                out[key] = (Decimal(res["amount"]["value"]),)
            elif kind == "embeddings":
                out[key] = (res["input_tokens"], res["num_model_requests"])
            else:
                out[key] = (res["input_tokens"], res["input_cached_tokens"],
                            res["output_tokens"], res["num_model_requests"])
    return starts, out


PATHS = {"completions": "/v1/organization/usage/completions",
         "embeddings": "/v1/organization/usage/embeddings", "costs": "/v1/organization/costs"}


def _get(http: httpx2.Client, admin: str, kind: str, params: list[tuple[str, Any]]
         ) -> dict[str, Any]:
    resp = http.get(PATHS[kind], params=params, headers={"Authorization": f"Bearer {admin}"})
    assert resp.status_code == 200, resp.text
    page: dict[str, Any] = json.loads(resp.text, parse_float=Decimal)
    assert_valid("UsageResponse", json.loads(resp.text))
    return page


def _check(http: httpx2.Client, org: Org, recs: list[Rec], kind: str, *, start: int, end: int,
           width: str, limit: int, group_by: tuple[str, ...], filters: dict[str, list[str]],
           brackets: bool) -> None:
    arr = "[]" if brackets else ""
    params: list[tuple[str, Any]] = [("start_time", start), ("end_time", end),
                                     ("bucket_width", width), ("limit", limit)]
    params += [(f"group_by{arr}", g) for g in group_by]
    params += [(f"{f}{arr}", v) for f, vals in filters.items() for v in vals]
    page = _get(http, org.admin, kind, params)
    want = _expected(kind, recs, start=start, end=end, width=width, limit=limit,
                     group_by=group_by, filters=filters)
    assert _flatten(kind, page, group_by) == want, (kind, width, group_by, filters)
    assert page["has_more"] == (start - start % WIDTH_S[width] + limit * WIDTH_S[width] < end)


# --- the ledger's side ---------------------------------------------------------------------------

def _cost_by(page: dict[str, Any], field: str) -> dict[str, Decimal]:
    """A costs page's amounts summed per value of `field`, over all its buckets."""
    cost: dict[str, Decimal] = defaultdict(Decimal)
    for b in page["data"]:
        for r in b["results"]:
            cost[r[field]] += Decimal(r["amount"]["value"])
    return cost


def _ledger_usage(dep: Deployment, org: Org) -> tuple[dict[int, int], dict[str, int]]:
    """The organization's usage debits per UTC day, and each key's spend-limit debits."""
    t = transfers.c
    with dep.engine.connect() as conn:
        acct = org_account_id(conn, org.user.organization_id)
        per_day: dict[int, int] = defaultdict(int)
        for created, amount in conn.execute(sa.select(t.created_at, t.amount_nano).where(
                t.kind == "usage", t.debit_account_id == acct)):
            stamp = int(created.timestamp())
            per_day[stamp - stamp % DAY] += int(amount)
        per_key: dict[str, int] = {}
        for key_id, _ in org.keys.values():
            per_key[key_id] = int(conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(t.amount_nano), 0))
                .select_from(transfers.join(accounts, accounts.c.id == t.debit_account_id))
                .where(t.kind == "spend_limit_use",
                       accounts.c.code.like(f"key:{key_id}:%"))).scalar_one())
    return dict(per_day), per_key


# --- the test -----------------------------------------------------------------------------------

def _slow_upstream(dep: Deployment) -> None:
    """A model slow enough (20 ms a token) for clients to walk away mid-stream."""
    slow = dep.start_devmodel(token_latency_ms=20)
    dep.add_upstream("slow-dev", slow.base_url + "/v1", {"dev-slow": "faregate-dev"},
                     DEV_CHAT_PRICE)


def _gateway(tmp: Any, database_url: str | None) -> Any:
    return running_gateway(tmp / "fg", database_url, aliases=ALIASES, alias_price=DEV_CHAT_PRICE,
                           setup=_slow_upstream)


@pytest.fixture(params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Gateway]:
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_database")
    with _gateway(tmp_path, url) as gateway:
        yield gateway


def test_usage_and_costs_equal_the_records_and_the_ledger(gw: Gateway) -> None:
    dep = gw.dep
    org = _org(dep, "usage-a@example.com", 5 * 10**9)
    poor = _org(dep, "usage-b@example.com", 150_000)  # runs out after a few requests
    rng = random.Random(11)
    plan = []
    for i in range(160):
        owner = poor if i % 8 == 7 else org
        key = owner.keys[rng.choice(["a1", "a1", "a2", "r1", "r2"])][1]
        plan.append((key, *_body(rng)))
    statuses = asyncio.run(_workload(gw.server.base_url, plan))
    assert 429 in statuses and 502 in statuses and 200 in statuses
    _wait_for_rollups(dep)

    recs = _records(dep, org.user.organization_id)
    assert {r.endpoint for r in recs} >= {"chat", "completions", "responses", "embeddings"}
    with dep.engine.connect() as conn:
        status_set = {s for (s,) in conn.execute(sa.select(usage_records.c.status).distinct())}
    assert {"ok", "upstream_error", "client_disconnected"} <= status_set
    t0, t1 = min(r.t for r in recs), max(r.t for r in recs)
    ranges = {"1d": (t0 - 2 * DAY - 5, t1 + 3 * DAY, 7), "1h": (t0 - 3 * HOUR + 17, t1 + HOUR, 168),
              "1m": (t0 - 5 * MINUTE, t1 + 3 * MINUTE, 1440)}
    ids = {name: key_id for name, (key_id, _) in org.keys.items()}
    filter_sets: list[dict[str, list[str]]] = [
        {}, {"project_ids": [org.projects["research"]]},
        {"api_key_ids": [ids["a1"], ids["r1"]]}, {"models": ["faregate-dev"]},
        {"project_ids": [org.projects["default"]], "models": ["faregate-dev", "dev-die"]},
        {"project_ids": ["proj_nonexistent"]}]
    groupings = [g for n in range(4) for g in itertools.combinations(
        ("project_id", "api_key_id", "model"), n)]
    with gw.http() as http:
        for kind in ("completions", "embeddings"):
            for width, (start, end, limit) in ranges.items():
                for n, (group_by, filters) in enumerate(itertools.product(groupings,
                                                                          filter_sets)):
                    _check(http, org, recs, kind, start=start, end=end, width=width,
                           limit=limit, group_by=group_by, filters=filters, brackets=n % 2 == 0)
        cost_filters = [{}, {"project_ids": [org.projects["research"]]},
                        {"api_key_ids": [ids["a2"]]}, {"line_items": ["faregate-dev-embed"]}]
        cost_groups = [g for n in range(4) for g in itertools.combinations(
            ("project_id", "api_key_id", "line_item"), n)]
        start, end, _ = ranges["1d"]
        for n, (group_by, filters) in enumerate(itertools.product(cost_groups, cost_filters)):
            _check(http, org, recs, "costs", start=start, end=end, width="1d", limit=7,
                   group_by=group_by, filters=filters, brackets=n % 2 == 1)

        # the ledger: each day's cost is the organization's usage debits that day, each key's
        # and each project's cost is what its keys' spend-limit accounts were debited
        per_day, per_key = _ledger_usage(dep, org)
        page = _get(http, org.admin, "costs", [("start_time", start), ("end_time", end)])
        by_day = {b["start_time"]: sum((Decimal(r["amount"]["value"]) for r in b["results"]),
                                       Decimal(0)) for b in page["data"]}
        assert {d: v for d, v in by_day.items() if v} == {
            d: Decimal(v) / NANO for d, v in per_day.items()}
        page = _get(http, org.admin, "costs", [("start_time", start), ("end_time", end),
                                               ("group_by", "api_key_id")])
        key_cost = _cost_by(page, "api_key_id")
        assert {k: v for k, v in key_cost.items() if v} == {
            k: Decimal(v) / NANO for k, v in per_key.items() if v}
        page = _get(http, org.admin, "costs", [("start_time", start), ("end_time", end),
                                               ("group_by[]", "project_id")])
        project_cost = _cost_by(page, "project_id")
        for name, project in org.projects.items():
            keys = {"default": ("a1", "a2"), "research": ("r1", "r2")}[name]
            assert project_cost.get(project, Decimal(0)) == Decimal(
                sum(per_key[ids[k]] for k in keys)) / NANO
        granted = 5 * 10**9
        assert sum(project_cost.values()) == Decimal(granted - dep.balance(org.user)[0]) / NANO

        # pages: walking next_page gives the same buckets as one big page
        start, end, _ = ranges["1m"]
        whole = _get(http, org.admin, "completions", [
            ("start_time", start), ("end_time", end), ("bucket_width", "1m"), ("limit", 1440),
            ("group_by", "model")])
        walked: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = [("start_time", start), ("end_time", end), ("bucket_width", "1m"),
                      ("limit", 4), ("group_by", "model")]
            page = _get(http, org.admin, "completions",
                        params + ([("page", cursor)] if cursor else []))
            walked += page["data"]
            assert len(page["data"]) <= 4
            if not page["has_more"]:
                assert page["next_page"] is None
                break
            cursor = page["next_page"]
        assert walked == whole["data"] and len(walked) > 4

        # the poor organization sees only its own usage, and it reconciles too
        poor_recs = _records(dep, poor.user.organization_id)
        assert poor_recs
        start, end, _ = ranges["1d"]
        for kind in ("completions", "embeddings", "costs"):
            _check(http, poor, poor_recs, kind, start=start, end=end, width="1d", limit=7,
                   group_by=("api_key_id",), filters={}, brackets=False)
    assert dep.verify() == []


# --- refusals, parameters, the SDK -------------------------------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Org]]:
    with running_gateway(tmp_path_factory.mktemp("usage-small") / "fg") as gateway:
        org = _org(gateway.dep, "usage-small@example.com", 10**9)
        client = gateway.client(org.keys["a1"][1])
        client.chat.completions.create(model="faregate-dev", max_tokens=5,
                                       messages=[{"role": "user", "content": "hi"}])
        client.embeddings.create(model="faregate-dev-embed", input=["a", "b"])
        _wait_for_rollups(gateway.dep)
        yield gateway, org


def test_only_admin_keys_read_usage_and_admin_keys_make_no_model_requests(
        small: tuple[Gateway, Org]) -> None:
    gw, org = small
    now = int(time.time())
    with gw.http() as http:
        for path in PATHS.values():
            for key in (org.keys["a1"][1], None, "sk-fg-not-a-real-key-000000000000000000"):
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                resp = http.get(path, params={"start_time": now - DAY}, headers=headers)
                assert resp.status_code == 401, resp.text
                assert_valid("ErrorResponse", resp.json())
            resp = http.get(path, params={"start_time": now - DAY},
                            headers={"Authorization": f"Bearer {org.keys['a1'][1]}"})
            assert "api.usage.read" in resp.json()["error"]["message"]
            resp = http.post(path, headers={"Authorization": f"Bearer {org.admin}"})
            assert resp.status_code == 405
        resp = http.get("/v1/organization/usage/images", params={"start_time": now},
                        headers={"Authorization": f"Bearer {org.admin}"})
        assert resp.status_code == 404 and resp.json()["error"]["type"] == "invalid_request_error"
    resp = gw.post("/v1/chat/completions", org.admin, {
        "model": "faregate-dev", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 401 and "Admin keys" in resp.json()["error"]["message"]


@pytest.mark.parametrize(("kind", "params", "param"), [
    ("completions", {}, "start_time"),
    ("completions", {"start_time": "yesterday"}, "start_time"),
    ("completions", {"start_time": "-5"}, "start_time"),
    ("completions", {"start_time": "100", "end_time": "100"}, "end_time"),
    ("completions", {"start_time": "100", "bucket_width": "1w"}, "bucket_width"),
    ("costs", {"start_time": "100", "bucket_width": "1h"}, "bucket_width"),
    ("completions", {"start_time": "100", "limit": "32"}, "limit"),
    ("completions", {"start_time": "100", "bucket_width": "1m", "limit": "1441"}, "limit"),
    ("costs", {"start_time": "100", "limit": "181"}, "limit"),
    ("costs", {"start_time": "100", "limit": "0"}, "limit"),
    ("completions", {"start_time": "100", "group_by": "line_item"}, "group_by"),
    ("embeddings", {"start_time": "100", "group_by[]": "batch"}, "group_by"),
    ("costs", {"start_time": "100", "group_by": "model"}, "group_by"),
    ("completions", {"start_time": "100", "user_ids": "user_1"}, "user_ids"),
    ("completions", {"start_time": "100", "batch": "maybe"}, "batch"),
    ("completions", {"start_time": "100", "page": "page_nonsense"}, "page"),
])
def test_a_bad_parameter_is_named(small: tuple[Gateway, Org], kind: str,
                                  params: dict[str, str], param: str) -> None:
    gw, org = small
    with gw.http() as http:
        resp = http.get(PATHS[kind], params=params,
                        headers={"Authorization": f"Bearer {org.admin}"})
    assert resp.status_code == 400, resp.text
    assert_valid("ErrorResponse", resp.json())
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.json()["error"]["param"] == param


def test_openai_fields_we_cannot_group_by_are_null(small: tuple[Gateway, Org]) -> None:
    gw, org = small
    now = int(time.time())
    with gw.http() as http:
        page = _get(http, org.admin, "completions", [
            ("start_time", now - DAY), ("group_by", "user_id"), ("group_by", "batch"),
            ("group_by", "service_tier"), ("group_by", "model")])
        results = [r for b in page["data"] for r in b["results"]]
        assert [(r["model"], r["user_id"], r["batch"], r["service_tier"]) for r in results] == [
            ("faregate-dev", None, False, None)]
        page = _get(http, org.admin, "completions", [("start_time", now - DAY),
                                                     ("batch", "true")])
        assert page["data"] and all(b["results"] == [] for b in page["data"])


def test_the_official_sdk_reads_usage_and_costs(small: tuple[Gateway, Org]) -> None:
    gw, org = small
    sent: list[httpx2.Request] = []
    client = openai.OpenAI(api_key=org.admin, admin_api_key=org.admin, base_url=gw.url,
                           http_client=openai.DefaultHttpxClient(
                               event_hooks={"request": [sent.append]}))
    start = int(time.time()) - DAY
    usage = client.admin.organization.usage.completions(
        start_time=start, group_by=["model", "project_id"], bucket_width="1h", limit=48)
    assert "group_by%5B%5D=model" in str(sent[-1].url)  # the SDK sends arrays as `key[]=`
    results = [r for b in usage.data for r in b.results]
    assert [(r.model, r.project_id, r.num_model_requests) for r in results] == [
        ("faregate-dev", org.projects["default"], 1)]
    emb = client.admin.organization.usage.embeddings(start_time=start, api_key_ids=[
        org.keys["a1"][0]])
    assert sum(r.num_model_requests for b in emb.data for r in b.results) == 1
    costs = client.admin.organization.usage.costs(start_time=start, group_by=["line_item"])
    with gw.dep.engine.connect() as conn:
        charged = {m: int(v) for m, v in conn.execute(
            sa.select(usage_records.c.model, sa.func.sum(usage_records.c.charged_nano))
            .group_by(usage_records.c.model))}
    got = {r.line_item: r.amount.value for b in costs.data for r in b.results}
    assert got == {m: float(Decimal(v) / NANO) for m, v in charged.items()}
    assert not costs.has_more and costs.next_page is None
