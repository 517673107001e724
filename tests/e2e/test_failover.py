"""Failover between real upstream processes.

Two standalone dev models serve one model at the same priority; a bounded mixed load runs
through the official SDK (no SDK retries) and one upstream is killed (SIGKILL) mid-load. No
request that had not started streaming may fail; a stream that had started on the killed
upstream ends with an OpenAI-format error event and is charged the written rule (prompt plus
the completion tokens received); the ledger verifies; the console shows the killed upstream's
breaker open. A second test covers 5xx/429 (fail over) against 4xx (passed on), and the
console's writes."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.fixtures_gateway import DEV_CHAT_PRICE, ONE_DOLLAR, Gateway, price_rule
from tests.e2e.operator_client import OperatorClient, create_operator
from tests.harness import Deployment, deployment

MODEL = "fo-model"
FAST = {"FAREGATE_UPSTREAM_STATS_FLUSH_S": "0.3", "FAREGATE_UPSTREAM_HEALTH_INTERVAL_S": "1",
        "FAREGATE_UPSTREAM_BREAKER_COOLDOWN_S": "600"}
MESSAGES = [{"role": "user", "content": "Tell me about failover."}]


@dataclass
class Outcome:
    stream: bool
    ok: bool = False
    request_id: str | None = None
    text: str = ""
    error: Any = None  # the SDK's exception
    started: bool = False  # a stream's first chunk arrived
    upstream: list[str] = field(default_factory=list)


def _one(client: openai.OpenAI, stream: bool, i: int = 0) -> Outcome:
    """One request; the prompt varies with `i` so that answers vary in length (8-40 tokens)."""
    out = Outcome(stream)
    messages = [{"role": "user", "content": f"Tell me about failover, part {i}."}]
    try:
        if not stream:
            raw = client.chat.completions.with_raw_response.create(
                model=MODEL, messages=messages, max_tokens=40)  # type: ignore[arg-type]
            out.request_id = raw.headers.get("x-request-id")
            out.text = raw.parse().choices[0].message.content or ""
            out.ok = True
            return out
        chunks = client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=40, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True})
        out.request_id = chunks.response.headers.get("x-request-id")
        for chunk in chunks:
            out.started = True
            if chunk.choices and chunk.choices[0].delta.content:
                out.text += chunk.choices[0].delta.content
        out.ok = True
    except openai.APIError as exc:
        out.error = exc
    return out


def _wait_for(what: str, check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _upstreams(admin: OperatorClient) -> dict[str, dict[str, Any]]:
    r = admin.get("/admin/api/upstreams")
    assert r.status_code == 200, r.text
    return {u["name"]: u for u in r.json()["data"]}


def _record(dep: Deployment, request_id: str) -> Any:
    rows = dep.query("SELECT upstream, status, prompt_tokens, cached_tokens, completion_tokens, "
                     "usage_source, charged_nano, cost_nano FROM usage_records "
                     "WHERE request_id = :r", r=request_id)
    assert len(rows) == 1, request_id
    return rows[0]


def test_kill_one_upstream_mid_load(tmp_path: Path) -> None:
    with deployment(tmp_path / "fg") as dep:
        a = dep.start_devmodel(token_latency_ms=40)
        b = dep.start_devmodel(token_latency_ms=40)
        dep.add_upstream("fo-a", a.base_url + "/v1", {MODEL: "faregate-dev"}, DEV_CHAT_PRICE)
        dep.add_upstream("fo-b", b.base_url + "/v1", {MODEL: "faregate-dev"}, DEV_CHAT_PRICE)
        gw = Gateway(dep, dep.start_server(**FAST))
        _, key = gw.user(10 * ONE_DOLLAR)
        client = gw.client(key, max_retries=0)
        root = create_operator(dep, "root@example.com", "admin")
        admin = OperatorClient(gw.server.base_url).signed_in(root)

        total, done = 60, threading.Semaphore(0)

        def run(i: int) -> Outcome:
            try:
                return _one(client, i % 2 == 0, i)
            finally:
                done.release()

        def killer() -> None:
            for _ in range(12):  # a fifth of the load has finished: the rest is in flight
                done.acquire()
            a.stop(signal.SIGKILL)

        kill = threading.Thread(target=killer)
        kill.start()
        with ThreadPoolExecutor(max_workers=10) as pool:
            outcomes = list(pool.map(run, range(total)))
        kill.join()
        assert a.proc.poll() is not None  # it really was killed mid-load

        failed_before_streaming = [o for o in outcomes if not o.ok and not o.started]
        assert failed_before_streaming == [], [str(o.error) for o in failed_before_streaming]
        assert all(o.ok for o in outcomes if not o.stream)
        broken = [o for o in outcomes if not o.ok]
        for o in broken:  # a stream that had started on the killed upstream
            assert o.stream and o.started
            assert isinstance(o.error, openai.APIError)
            assert isinstance(o.error.body, dict)
            assert o.error.body["type"] == "server_error"
            assert o.error.body["code"] == "upstream_error"
            assert o.request_id is not None
            rec = _record(dep, o.request_id)
            assert rec.upstream == "fo-a" and rec.status == "upstream_error"
            assert rec.usage_source == "local" and rec.prompt_tokens >= 1
            if o.text:
                assert rec.completion_tokens >= 1
            assert rec.charged_nano == rec.cost_nano == price_rule(
                DEV_CHAT_PRICE, rec.prompt_tokens, rec.cached_tokens, rec.completion_tokens)
        for o in outcomes:
            if o.ok:
                assert o.text and o.request_id is not None
                rec = _record(dep, o.request_id)
                assert rec.status == "ok" and rec.upstream in ("fo-a", "fo-b")
                assert rec.charged_nano == price_rule(
                    DEV_CHAT_PRICE, rec.prompt_tokens, rec.cached_tokens, rec.completion_tokens)

        # After the kill every request is served by fo-b.
        after = [_one(client, i % 2 == 0, i) for i in range(6)]
        assert all(o.ok for o in after)
        assert {_record(dep, str(o.request_id)).upstream for o in after} == {"fo-b"}

        figures = _wait_for("the killed upstream's breaker open on the console", lambda: (
            f if (f := _upstreams(admin))["fo-a"]["breaker"] == "open" else None))
        assert figures["fo-a"]["failures"] >= 1 and figures["fo-a"]["health"] == "failing"
        assert figures["fo-a"]["last_error"]
        assert figures["fo-b"]["breaker"] == "closed" and figures["fo-b"]["health"] == "ok"
        assert figures["fo-b"]["requests"] >= 6 and figures["fo-b"]["mean_latency_ms"] > 0
        assert figures["fo-b"]["failures"] == 0

        # The CLI shows the same (it reads the same table).
        stats = _cli(dep, "upstreams", "stats", "--json")
        assert {s["name"]: s["breaker"] for s in stats}["fo-a"] == "open"

        dep.stop_all_servers()  # settle everything, return leases
        assert dep.verify() == []


def _cli(dep: Deployment, *args: str) -> Any:
    import json
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "faregate.cli", *args], env=dep.env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_5xx_and_429_fail_over_4xx_is_passed_on(tmp_path: Path) -> None:
    with deployment(tmp_path / "fg") as dep:
        dm = dep.start_devmodel()
        gw = Gateway(dep, dep.start_server(**FAST), dm)
        root = create_operator(dep, "root@example.com", "admin")
        admin = OperatorClient(gw.server.base_url).signed_in(root)
        good = admin.post("/admin/api/upstreams", {
            "name": "good", "base_url": dm.base_url + "/v1", "priority": 1,
            "models": {"m5": "faregate-dev", "m429": "faregate-dev", "m4": "faregate-dev"},
            "api_key": "sk-never-shown"})
        assert good.status_code == 201, good.text
        assert good.json()["has_stored_key"] is True and "sk-never" not in good.text
        bad = admin.post("/admin/api/upstreams", {
            "name": "bad", "base_url": dm.base_url + "/v1", "priority": 5,
            "models": {"m5": "faregate-dev:fail=503"}})
        assert bad.status_code == 201, bad.text
        bad_id = bad.json()["id"]
        for model, target in (("m429", "faregate-dev:fail=429"), ("m4", "faregate-dev:fail=400")):
            r = admin.post(f"/admin/api/upstreams/{bad_id}/models",
                           {"model": model, "upstream_model": target})
            assert r.status_code == 200, r.text
        r = admin.patch(f"/admin/api/upstreams/{bad_id}", {"priority": 0, "weight": 2})
        assert r.status_code == 200 and r.json()["priority"] == 0, r.text
        _, key = gw.user()
        client = gw.client(key, max_retries=0)

        def bad_first() -> bool:  # the catalog reloads within a second or so
            try:
                client.chat.completions.create(model="m4", messages=MESSAGES)  # type: ignore[arg-type]
            except openai.BadRequestError:
                return True
            except openai.APIError:
                return False
            return False

        _wait_for("the gateway to route m4 to `bad` first", bad_first, 30)
        for model in ("m5", "m429"):
            for stream in (False, True):
                raw = client.chat.completions.with_raw_response.create(
                    model=model, messages=MESSAGES, max_tokens=5,  # type: ignore[arg-type]
                    stream=stream)
                assert raw.status_code == 200
                if stream:
                    list(raw.parse())  # type: ignore[call-overload]
                rec = _record(dep, raw.headers["x-request-id"])
                assert rec.upstream == "good" and rec.status == "ok"  # new models cost 0
        with pytest.raises(openai.BadRequestError):  # the request's fault: no failover
            client.chat.completions.create(model="m4", messages=MESSAGES)  # type: ignore[arg-type]

        figures = _wait_for("the figures to be written", lambda: (
            f if (f := _upstreams(admin))["bad"]["failovers"] >= 4 else None))
        assert figures["bad"]["failures"] >= 4
        assert figures["good"]["failures"] == 0 and figures["good"]["requests"] >= 4
        assert "api_key" not in figures["good"]

        # Removing the mapping stops routing m5 to `bad`; the changes are in the audit trail.
        r = admin.delete(f"/admin/api/upstreams/{bad_id}/models/m5")
        assert r.status_code == 200 and "m5" not in r.json()["models"], r.text
        actions = [row.action for row in dep.query(
            "SELECT action FROM audit_events WHERE action LIKE 'upstream.%' ORDER BY id")]
        assert actions == ["upstream.created", "upstream.created", "upstream.model_mapped",
                           "upstream.model_mapped", "upstream.changed",
                           "upstream.model_unmapped"]
        details = " ".join(str(row.detail) for row in dep.query("SELECT detail FROM audit_events"))
        assert "sk-never-shown" not in details


def test_a_stopping_server_writes_its_last_upstream_figures(sqlite_dep: Deployment) -> None:
    """The figures are written every FAREGATE_UPSTREAM_STATS_FLUSH_S, and once more at a clean
    stop: the calls of a server's last seconds are not lost from the console's counts."""
    dep = sqlite_dep
    upstream = dep.start_devmodel()
    dep.add_upstream("last", f"{upstream.base_url}/v1", {MODEL: "faregate-dev"}, DEV_CHAT_PRICE)
    user = dep.new_user("last-figures@example.com", ONE_DOLLAR)
    _, key = dep.new_key(user)
    server = dep.start_server(FAREGATE_UPSTREAM_STATS_FLUSH_S="300", FAREGATE_DEV_MODEL="false")
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0)
    for i in range(3):
        assert _one(client, stream=bool(i % 2), i=i).ok
    assert dep.query("SELECT requests FROM upstream_stats") == []  # not written yet
    dep.stop_all_servers()
    assert [tuple(r) for r in dep.query("SELECT requests, failures FROM upstream_stats")] \
        == [(3, 0)]
