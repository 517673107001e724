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
        dep.add_upstream("dev", f"{upstream.base_url}/v1", {"dev": "faregate-dev"}, PRICE)
        user = dep.new_user("restart@example.com", GRANT_NANO)
        _, key = dep.new_key(user)
        # A short key cache, so requests keep needing the database while it is down.
        server = dep.start_server(FAREGATE_KEY_CACHE_TTL_S="0.2", FAREGATE_DEV_MODEL="false",
                                  FAREGATE_LEASE_TTL_S="10")
        calls: list[tuple[float, int, dict[str, object] | None, str]] = []
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
        time.sleep(1.5)
        down_at = time.monotonic()
        private_pg.stop()
        time.sleep(2.0)
        private_pg.start()
        up_at = time.monotonic()
        time.sleep(5.0)  # recovery, with no server restart
        stop.set()
        for th in threads:
            th.join(60)
        assert not any(th.is_alive() for th in threads)
        assert server.proc.poll() is None

        statuses = [status for _, status, _, _ in calls]
        assert 0 not in statuses, [c for c in calls if c[1] == 0][:3]
        assert 500 not in statuses, [c for c in calls if c[1] == 500][:3]
        failed = [c for c in calls if c[1] != 200]
        assert failed, "no call met the outage: the test proves nothing"
        for _, status, body, _ in failed:
            assert status == 503, (status, body)
            assert body is not None and set(body["error"]) == OPENAI_ERROR  # type: ignore[arg-type]
            assert body["error"]["code"] == "service_unavailable"  # type: ignore[index]
        for _, s in streams:  # a stream either ends normally or is refused before it starts
            assert not s.cut, s
            assert (s.status == 200 and s.done and s.usage is not None and s.error is None) or (
                s.status == 503 and s.error is not None and set(s.error) == OPENAI_ERROR), s
        # Before the outage and well after it, everything succeeds.
        before = [s for t, s, _, _ in calls if t < down_at - 0.5]
        assert before and all(s == 200 for s in before)
        late = [s for t, s, _, _ in calls if t > up_at + 2.0]
        late += [s.status for t, s in streams if t > up_at + 2.0]
        assert late and all(s == 200 for s in late), late

        # Exactly what was answered was charged, once; nothing is left half-written.
        answered = {rid for _, s, _, rid in calls if s == 200}
        answered |= {s.request_id for _, s in streams if s.done}
        dep.stop_all_servers()  # returns the lease
        dep.engine.dispose()  # the test's own pooled connections died with the restart
        check_money(dep, user, GRANT_NANO, PRICE, answered=answered)
