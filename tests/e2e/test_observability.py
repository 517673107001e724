"""Metrics, logs and health against real server processes: /metrics counts exactly the requests
made (per endpoint and status, histograms included), tokens and charges equal the usage
records', auto-recharge outcomes equal the charge attempts, only allowed clients read it,
several workers add up; JSON logs are one object per line and carry the request id; /readyz
follows the database and Redis."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import openai
import psycopg
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from faregate.server import MULTIPROC_ENV, metrics_dir
from tests.e2e.api_client import verified_owner
from tests.e2e.fixtures_gateway import Gateway, running_gateway
from tests.e2e.test_billing_flow import _bind
from tests.harness import Deployment, free_port

pytestmark = pytest.mark.timeout(180)

TOKEN = "metrics-token-for-tests"
MESSAGES: list[Any] = [{"role": "user", "content": "Name three colours of the sea."}]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base_url: str, headers: dict[str, str] | None = None) -> Samples:
    resp = httpx2.get(f"{base_url}/metrics", headers=headers or {}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def by_labels(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """The samples of one name, keyed by the values of `keys`."""
    out: dict[tuple[str, ...], float] = {}
    for (n, labels), value in samples.items():
        if n == name:
            d = dict(labels)
            out[tuple(d[k] for k in keys)] = out.get(tuple(d[k] for k in keys), 0) + value
    return out


def delta(after: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def wait_for(fn: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not fn():
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One server with JSON logs and the access log on, behind a "proxy" on loopback."""
    with running_gateway(tmp_path_factory.mktemp("obs") / "fg",
                         FAREGATE_LOG_FORMAT="json", FAREGATE_LOG_LEVEL="info",
                         FAREGATE_ACCESS_LOG="true", FAREGATE_METRICS_TOKEN=TOKEN,
                         FAREGATE_TRUSTED_PROXIES='["127.0.0.1"]') as gateway:
        yield gateway


def test_requests_tokens_and_revenue_are_counted_exactly(gw: Gateway) -> None:
    before = scrape(gw.server.base_url)
    _, key = gw.user()
    expected: Counter[tuple[str, str]] = Counter()
    with gw.client(key, max_retries=0) as client:
        for _ in range(2):
            client.chat.completions.create(model="faregate-dev", messages=MESSAGES,
                                           max_tokens=12)
        list(client.chat.completions.create(model="faregate-dev", messages=MESSAGES,
                                            max_tokens=12, stream=True))
        expected["chat", "200"] += 3
        client.embeddings.create(model="faregate-dev-embed", input=["one", "two"])
        client.embeddings.create(model="faregate-dev-embed", input="three")
        expected["embeddings", "200"] += 2
        client.responses.create(model="faregate-dev", input="Hello", max_output_tokens=16)
        expected["responses", "200"] += 1
        list(client.models.list())
        expected["models", "200"] += 1
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=MESSAGES)
        expected["chat", "404"] += 1
    with gw.client("sk-fg-not-a-key", max_retries=0) as bad, \
            pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="faregate-dev", messages=MESSAGES)
    expected["chat", "401"] += 1

    def counted() -> dict[Any, float]:
        return delta(by_labels(scrape(gw.server.base_url), "faregate_requests_total",
                               "endpoint", "status"),
                     by_labels(before, "faregate_requests_total", "endpoint", "status"))

    # The middleware counts once the response is sent: give the last one a moment.
    wait_for(lambda: counted() == dict(expected))
    after = scrape(gw.server.base_url)
    got = delta(by_labels(after, "faregate_requests_total", "endpoint", "status"),
                by_labels(before, "faregate_requests_total", "endpoint", "status"))
    assert got == dict(expected)

    per_endpoint: Counter[str] = Counter()
    for (endpoint, _), n in expected.items():
        per_endpoint[endpoint] += n
    for name in ("faregate_request_duration_seconds", "faregate_time_to_first_byte_seconds"):
        counts = delta(by_labels(after, f"{name}_count", "endpoint"),
                       by_labels(before, f"{name}_count", "endpoint"))
        assert counts == {(e,): n for e, n in per_endpoint.items()}, name
        inf = {k[0]: v for k, v in delta(
            by_labels(after, f"{name}_bucket", "endpoint", "le"),
            by_labels(before, f"{name}_bucket", "endpoint", "le")).items() if k[1] == "+Inf"}
        assert inf == dict(per_endpoint), name

    # Tokens and charges: exactly the usage records' (this server is the only writer).
    rows = gw.dep.query("SELECT model, SUM(prompt_tokens), SUM(cached_tokens), "
                        "SUM(completion_tokens), SUM(charged_nano) FROM usage_records "
                        "GROUP BY model")
    assert {r[0] for r in rows} == {"faregate-dev", "faregate-dev-embed"}
    tokens = by_labels(after, "faregate_tokens_total", "model", "kind")
    charged = by_labels(after, "faregate_charged_nano_usd_total", "model")
    for model, prompt, cached, completion, charged_nano in rows:
        assert tokens.get((model, "input"), 0) == int(prompt) - int(cached)
        assert tokens.get((model, "cached_input"), 0) == int(cached)
        assert tokens.get((model, "output"), 0) == int(completion)
        assert charged.get((model,), 0) == int(charged_nano) > 0
    assert after[("faregate_open_holds", ())] == 0
    # Every settled request was in exactly one group commit.
    [(records,)] = gw.dep.query("SELECT count(*) FROM usage_records")
    sizes = by_labels(after, "faregate_settlement_batch_size_sum", "path")
    batches = by_labels(after, "faregate_settlement_batch_size_count", "path")
    assert sum(sizes.values()) == records > 0
    assert 1 <= sum(batches.values()) <= records


def test_metrics_need_an_allowed_address_or_the_token(gw: Gateway) -> None:
    url = f"{gw.server.base_url}/metrics"
    outside = {"X-Forwarded-For": "203.0.113.9"}  # through the trusted proxy on loopback
    assert httpx2.get(url).status_code == 200
    refused = httpx2.get(url, headers=outside)
    assert refused.status_code == 403 and "faregate_" not in refused.text
    wrong = httpx2.get(url, headers={**outside, "Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    scrape(gw.server.base_url, {**outside, "Authorization": f"Bearer {TOKEN}"})


def test_json_logs_carry_the_request_id(gw: Gateway) -> None:
    _, key = gw.user()
    with gw.client(key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="faregate-dev", messages=MESSAGES, max_tokens=5)
    rid = raw.headers["x-request-id"]

    def lines() -> list[dict[str, Any]]:
        text = gw.server.log.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    wait_for(lambda: any(x.get("request_id") == rid for x in lines()))
    logged = lines()  # every line is one JSON object (json.loads raised otherwise)
    assert all({"time", "level", "logger", "message"} <= set(x) for x in logged)
    mine = [x for x in logged if x.get("request_id") == rid]
    assert mine and mine[0]["logger"] == "faregate.access"
    assert mine[0]["status"] == 200 and mine[0]["endpoint"] == "chat"
    assert "/v1/chat/completions" in mine[0]["message"]
    assert any(x["logger"].startswith("uvicorn") for x in logged)  # uvicorn's lines too


def test_readyz_follows_the_database(pg_dep: Deployment, pg_admin_url: str,
                                     redis_url: str) -> None:
    server = pg_dep.start_server(FAREGATE_REDIS_URL=redis_url)
    ready = httpx2.get(f"{server.base_url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {
        "database": "ok", "catalog": "ok", "redis": "ok"}}

    name = sa.engine.make_url(pg_dep.database_url).database
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            states: list[httpx2.Response] = []

            def not_ready() -> bool:
                states.append(httpx2.get(f"{server.base_url}/readyz", timeout=10))
                return states[-1].status_code == 503

            wait_for(not_ready)
            assert states[-1].status_code == 503, states[-1].text
            body = states[-1].json()
            assert body["status"] == "not ready"
            assert body["checks"]["database"].startswith("error")
            assert body["checks"]["redis"] == "ok"
            # Liveness is not readiness: the process is up.
            assert httpx2.get(f"{server.base_url}/healthz").status_code == 200
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    def ready_again() -> bool:
        return httpx2.get(f"{server.base_url}/readyz", timeout=10).status_code == 200

    wait_for(ready_again)
    assert ready_again()


def test_readyz_reports_an_unreachable_redis(sqlite_dep: Deployment) -> None:
    nobody = free_port()  # nothing listens there
    server = sqlite_dep.start_server(FAREGATE_REDIS_URL=f"redis://127.0.0.1:{nobody}/0")
    resp = httpx2.get(f"{server.base_url}/readyz", timeout=10)
    assert resp.status_code == 503
    checks = resp.json()["checks"]
    assert checks["database"] == "ok" and checks["redis"].startswith("error")


def test_several_workers_report_together(sqlite_dep: Deployment, tmp_path: Path) -> None:
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    (prom_dir / "counter_1.db").write_bytes(b"stale")  # an earlier run's: removed at start
    server = sqlite_dep.start_server(FAREGATE_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(prom_dir))
    user = sqlite_dep.new_user("workers@example.com", 10**9)
    _, key = sqlite_dep.new_key(user)

    def one(_: int) -> int:
        with httpx2.Client(base_url=server.base_url, timeout=30) as http:  # a new connection
            return http.get("/v1/models", headers={"Authorization": f"Bearer {key}"}
                            ).status_code

    def pids() -> set[str]:
        return {m.group(1) for f in os.listdir(prom_dir)
                if (m := re.fullmatch(r"counter_(\d+)\.db", f))}

    sent = 0
    with ThreadPoolExecutor(16) as pool:
        # Until both workers have answered some (the kernel picks which one accepts).
        while len(pids()) < 2 and sent < 3000:
            assert set(pool.map(one, range(100))) == {200}
            sent += 100
    assert len(pids()) == 2 and "1" not in pids(), pids()

    def total() -> float:
        return by_labels(scrape(server.base_url), "faregate_requests_total",
                         "endpoint", "status").get(("models", "200"), 0)

    wait_for(lambda: total() == sent)
    # Whichever worker answers the scrape, it reports every worker's requests.
    assert [total() for _ in range(10)] == [sent] * 10


def _listeners(port: int) -> int:
    """Listening TCP sockets on 127.0.0.1:port (from /proc/net/tcp; state 0A is LISTEN)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        return sum(1 for line in f.readlines()[1:]
                   if line.split()[1] == want and line.split()[3] == "0A")


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="Linux only")
def test_each_worker_listens_on_its_own_socket(sqlite_dep: Deployment) -> None:
    """With several workers each has a SO_REUSEPORT socket (the kernel spreads connections
    evenly); FAREGATE_REUSE_PORT=false keeps uvicorn's one shared socket. A second server on a
    port in use fails to start instead of quietly sharing the port."""
    server = sqlite_dep.start_server(FAREGATE_WORKERS="2")
    # /healthz answered as soon as one worker was up; the other may still be starting.
    wait_for(lambda: _listeners(server.port) == 2, timeout_s=60)
    assert _listeners(server.port) == 2
    other = subprocess.run([sys.executable, "-m", "faregate.server"], timeout=60,
                           env={**sqlite_dep.env, "FAREGATE_PORT": str(server.port),
                                "FAREGATE_WORKERS": "2"}, capture_output=True, text=True)
    assert other.returncode != 0
    assert "cannot listen on 127.0.0.1" in other.stdout + other.stderr
    assert _listeners(server.port) == 2
    shared = sqlite_dep.start_server(FAREGATE_WORKERS="2", FAREGATE_REUSE_PORT="false")
    assert _listeners(shared.port) == 1


def test_serve_picks_a_private_metrics_dir_for_several_workers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, "")  # restored (unset) after the test
    monkeypatch.delenv(MULTIPROC_ENV)
    assert metrics_dir(1) is None and MULTIPROC_ENV not in os.environ
    path = metrics_dir(2)
    try:
        assert path is not None and os.environ[MULTIPROC_ENV] == path
        assert os.path.isdir(path) and os.listdir(path) == []
    finally:
        if path:
            os.rmdir(path)


def test_auto_recharge_outcomes_are_counted(sqlite_dep: Deployment) -> None:
    """The background jobs run inside `serve`: each auto-recharge attempt is counted by its
    outcome, as many as the charge attempts recorded."""
    server = sqlite_dep.start_server()
    for number, email in (("4242424242424242", "good@example.com"),
                          ("4000000000000341", "declined@example.com")):
        c, org = verified_owner(sqlite_dep, server.base_url, email)
        card = _bind(c, org, number)
        assert card.status_code == 201, card.text
        r = c.put(f"/api/orgs/{org}/auto-recharge", {
            "enabled": True, "threshold_usd": "10", "amount_usd": "10",
            "payment_method_id": card.json()["id"]})
        assert r.status_code == 200, r.text

    def attempts() -> dict[tuple[str, ...], float]:
        rows = sqlite_dep.query("SELECT status, COUNT(*) FROM charge_attempts "
                                "WHERE kind = 'auto_recharge' GROUP BY status")
        return {(str(status),): float(n) for status, n in rows}

    def counted() -> dict[tuple[str, ...], float]:
        return by_labels(scrape(server.base_url), "faregate_auto_recharges_total", "outcome")

    wait_for(lambda: counted() == attempts() == {("succeeded",): 1, ("failed",): 1}, 30)
    assert counted() == attempts() == {("succeeded",): 1, ("failed",): 1}
