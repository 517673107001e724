"""PostgreSQL goes away under load and comes back (a fast shutdown, 2 s down, a start): requests
that need the database while it is down fail with 503 in OpenAI's error format (never a 500,
never a hang past the client's timeout), the server recovers by itself when it is back (no
restart), and nothing is half-written: every answered call was charged exactly once, every
lease is closed, and the money check and the ledger verify.

The test runs its own throw-away PostgreSQL cluster (the system one is shared by other tests)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from faregate.catalog.service import ModelPrice
from tests.faults.checks import check_money
from tests.faults.conftest import RestartablePostgres
from tests.faults.load import Stream, sessions, stream_chat
from tests.harness import deployment

PRICE = ModelPrice(1_000_000_000, 500_000_000, 3_000_000_000)
GRANT_NANO = 5_000_000_000
OPENAI_ERROR = {"message", "type", "param", "code"}


@pytest.mark.postgres
def test_requests_fail_cleanly_and_recover(private_pg: RestartablePostgres,
                                           tmp_path: Path) -> None:
    url = private_pg.create_database("faregate")
    with deployment(tmp_path / "fg", url) as dep:
        upstream = dep.start_devmodel(token_latency_ms=5.0)
        dep.add_upstream("dev", f"{upstream.base_url}/v1", {
            "dev": "faregate-dev", "dev-slow": "faregate-dev:slow_first_byte_ms=1000"}, PRICE)
        user = dep.new_user("restart@example.com", GRANT_NANO)
        _, key = dep.new_key(user)
        _, unseen_key = dep.new_key(user)  # never used before the outage: not in any cache
        # A short key cache, so requests keep needing the database while it is down.
        server = dep.start_server(FAREGATE_KEY_CACHE_TTL_S="0.2", FAREGATE_DEV_MODEL="false",
                                  FAREGATE_LEASE_TTL_S="10")
        calls: list[tuple[float, int, dict[str, Any] | None, str]] = []
        streams: list[tuple[float, Stream]] = []
        stop = threading.Event()

        def caller() -> None:
            with httpx2.Client(base_url=server.base_url, timeout=30) as http:
                while not stop.is_set():
                    t0 = time.monotonic()
                    try:
                        r = http.post("/v1/chat/completions", headers={
                            "Authorization": f"Bearer {key}"}, json={
                            "model": "dev", "max_tokens": 8,
                            "messages": [{"role": "user", "content": "hi"}]})
                    except httpx2.HTTPError as exc:  # a hang past 30 s would land here
                        calls.append((t0, 0, {"transport": repr(exc)}, ""))
                        continue
                    body = r.json() if r.headers.get("content-type", "").startswith(
                        "application/json") else None
                    calls.append((t0, r.status_code, body, r.headers.get("x-request-id", "")))

        def streamer() -> None:
            async def loop() -> None:
                [client] = sessions(1, timeout_s=30)
                try:
                    while not stop.is_set():
                        t0 = time.monotonic()
                        streams.append((t0, await stream_chat(
                            client, server.base_url, key, "dev", max_tokens=30)))
                finally:
                    await client.close()
            asyncio.run(loop())

        threads = [threading.Thread(target=caller) for _ in range(3)]
        threads += [threading.Thread(target=streamer) for _ in range(2)]
        for th in threads:
            th.start()
        time.sleep(1.2)
        # A stream that starts now and ends while the database is down: its settlement waits
        # for the database, then the stream ends normally (usage, [DONE]) and is charged.
        slow: list[Stream] = []

        async def slow_stream() -> None:
            [client] = sessions(1, timeout_s=30)
            try:
                slow.append(await stream_chat(client, server.base_url, key, "dev-slow",
                                              max_tokens=10))
            finally:
                await client.close()
        slow_thread = threading.Thread(target=lambda: asyncio.run(slow_stream()))
        slow_thread.start()
        time.sleep(0.3)
        down_at = time.monotonic()
        private_pg.stop()
        # A call that must read the database (its key is in no cache) is refused cleanly.
        probe = httpx2.post(f"{server.base_url}/v1/chat/completions", timeout=30,
                            headers={"Authorization": f"Bearer {unseen_key}"},
                            json={"model": "dev", "max_tokens": 8,
                                  "messages": [{"role": "user", "content": "hi"}]})
        time.sleep(max(0.0, down_at + 2.0 - time.monotonic()))
        private_pg.start()
        up_at = time.monotonic()
        time.sleep(5.0)  # recovery, with no server restart
        stop.set()
        for th in [*threads, slow_thread]:
            th.join(60)
        assert not any(th.is_alive() for th in threads)
        assert server.proc.poll() is None

        statuses = [status for _, status, _, _ in calls]
        assert 0 not in statuses, [c for c in calls if c[1] == 0][:3]
        assert 500 not in statuses, [c for c in calls if c[1] == 500][:3]
        assert probe.status_code == 503, probe.text
        assert set(probe.json()["error"]) == OPENAI_ERROR
        assert probe.json()["error"]["code"] == "service_unavailable"
        assert probe.headers["retry-after"] == "1"
        # The load's calls may get through on cached keys and leased credit; those that
        # needed the database were refused the same way.
        failed = [c for c in calls if c[1] != 200]
        for _, status, body, _ in failed:
            assert status == 503, (status, body)
            assert body is not None and set(body["error"]) == OPENAI_ERROR
            assert body["error"]["code"] == "service_unavailable"
        for _, s in streams:  # a stream either ends normally or is refused before it starts
            assert not s.cut, s
            assert (s.status == 200 and s.done and s.usage is not None and s.error is None) or (
                s.status == 503 and s.error is not None and set(s.error) == OPENAI_ERROR), s
        [met_outage] = slow
        assert met_outage.done and met_outage.usage is not None and met_outage.error is None, (
            met_outage)
        # Before the outage and well after it, everything succeeds.
        before = [s for t, s, _, _ in calls if t < down_at - 0.5]
        assert before and all(s == 200 for s in before)
        late = [s for t, s, _, _ in calls if t > up_at + 2.0]
        late += [s.status for t, s in streams if t > up_at + 2.0]
        assert late and all(s == 200 for s in late), late

        # Exactly what was answered was charged, once; nothing is left half-written.
        answered = {rid for _, s, _, rid in calls if s == 200}
        answered |= {s.request_id for _, s in streams if s.done} | {met_outage.request_id}
        dep.stop_all_servers()  # returns the lease
        dep.engine.dispose()  # the test's own pooled connections died with the restart
        check_money(dep, user, GRANT_NANO, PRICE, answered=answered)
