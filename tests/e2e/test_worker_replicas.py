"""`faregate worker` replicas on one PostgreSQL never do a job twice: three workers and a
server (without jobs of its own); a card, a top-up and auto-recharge under its threshold give
exactly one off-session charge; every job ran, one process at a time, once per interval across
the fleet (job_runs); the ledger verifies."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import sqlalchemy as sa

from faregate.db.schema import charge_attempts, job_runs, sandbox_payments
from tests.e2e.api_client import verified_owner
from tests.e2e.test_billing_flow import _bind, _usd, _wait
from tests.harness import Deployment, Proc, deployment, free_port

ROLLUP_INTERVAL_S = 0.5  # worker/usage_jobs.py


def _start_worker(dep: Deployment, n: int, **env: str) -> Proc:
    exe = shutil.which("faregate", path=str(Path(sys.executable).parent))
    assert exe is not None
    log = dep.data_dir / f"worker-{n}.log"
    proc = subprocess.Popen([exe, "worker"], env={**dep.env, **env}, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    worker = Proc(proc, 0, log, "worker")
    dep.procs.append(worker)
    return worker


def test_three_workers_charge_once_and_share_the_jobs(pg_dep: Deployment) -> None:
    dep = pg_dep
    server = dep.start_server(FAREGATE_RUN_BACKGROUND_JOBS="false")
    c, org = verified_owner(dep, server.base_url)
    assert _bind(c, org, "4242424242424242").status_code == 201
    assert c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "5"}).status_code == 201
    r = c.put(f"/api/orgs/{org}/auto-recharge", {
        "enabled": True, "threshold_usd": "10", "amount_usd": "20"})
    assert r.status_code == 200, r.text

    started = time.monotonic()
    workers = [_start_worker(dep, n) for n in range(3)]

    def auto_charges() -> int:
        with dep.engine.begin() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(charge_attempts)
                                    .where(charge_attempts.c.kind == "auto_recharge"))
                       .scalar_one())

    _wait(lambda: _usd(c, org) == "25", timeout_s=30,
          describe=lambda: [w.log.read_text()[-2000:] for w in workers])
    time.sleep(3)  # more rounds of every replica's auto-recharge loop
    elapsed = time.monotonic() - started
    assert all(w.proc.poll() is None for w in workers)
    assert auto_charges() == 1
    assert _usd(c, org) == "25"
    with dep.engine.begin() as conn:
        payments = conn.execute(sa.select(sa.func.count()).select_from(sandbox_payments)
                                .where(sandbox_payments.c.capture_method == "automatic")
                                ).scalar_one()
        runs = {row.name: row for row in conn.execute(sa.select(job_runs))}
    assert payments == 2  # the top-up and the one auto-recharge
    for name in ("sweep-lapsed-leases", "auto-recharge", "usage-rollup", "usage-tiers",
                 "prune-attempts", "credit-lots", "key-spend-limits"):
        assert runs[name].runs >= 1, name
        assert runs[name].holder is not None and runs[name].holder.count(":") == 2, name
    # Once per interval across the fleet: three replicas polling every 0.5 s would run the
    # rollup about three times as often. (Slowness can only lower this count.)
    assert runs["usage-rollup"].runs <= elapsed / ROLLUP_INTERVAL_S + 3, (runs["usage-rollup"],
                                                                         elapsed)
    assert runs["usage-tiers"].runs == 1  # hourly: once, not once per replica
    for w in workers:
        w.stop()
    assert dep.verify() == []


def test_several_workers_start_together_on_a_fresh_database(
        make_pg_database: Callable[[], str], tmp_path: Path) -> None:
    """Every process of `serve --workers N` registers the built-in models at start; on
    PostgreSQL they used to race (one failed on "already exists" and took the server down)."""
    for n in range(3):
        with deployment(tmp_path / f"fg{n}", make_pg_database()) as dep:
            server = dep.start_server(FAREGATE_WORKERS="3")
            models = httpx2.get(f"{server.base_url}/v1/models", timeout=10, headers={
                "Authorization": f"Bearer {dep.new_key(dep.new_user(f'w{n}@example.com'))[1]}"})
            assert models.status_code == 200, server.log.read_text()[-2000:]
            assert "faregate-dev" in {m["id"] for m in models.json()["data"]}
            assert server.proc.poll() is None
            assert "already exists" not in server.log.read_text()


def test_a_worker_serves_its_job_metrics(sqlite_dep: Deployment) -> None:
    """With FAREGATE_WORKER_METRICS_PORT the worker serves Prometheus metrics of its own (a
    server's /metrics shows only the jobs run in that server)."""
    port = free_port()
    worker = _start_worker(sqlite_dep, 1, FAREGATE_WORKER_METRICS_PORT=str(port))
    deadline = time.monotonic() + 30
    while True:
        assert worker.proc.poll() is None, worker.log.read_text()[-2000:]
        try:
            text = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx2.TransportError:
            text = ""
        if 'faregate_job_runs_total{job="usage-rollup",outcome="ok"}' in text and \
                'faregate_job_duration_seconds_count{job="sweep-lapsed-leases"}' in text:
            break
        assert time.monotonic() < deadline, text[-2000:]
        time.sleep(0.2)
