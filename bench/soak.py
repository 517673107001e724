"""Soak test: two Faregate processes on PostgreSQL under a steady open-loop load for a long time,
watching each process's memory (RSS) and the errors per minute.

    make soak                                   # FAREGATE_SOAK_MINUTES (default 20) minutes
    FAREGATE_SOAK_MINUTES=3 make soak           # a short smoke run
    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/soak.py --minutes 3 --rate 20

PostgreSQL: --pg-url, else $FAREGATE_SOAK_PG_URL, else $FAREGATE_TEST_PG_ADMIN_URL (what
scripts/testenv.py exports). A fresh database faregate_soak_<time>_<pid> is created there and
dropped at the end. The upstream is the standalone development model (5 ms per token).

The load: --rate requests per second (default 20), started on a fixed schedule whatever the
answers take (open loop), alternating between the two processes, half streaming (with
include_usage) and half not, max_tokens 16; one organization with ample credit and one key. A
request is an error when it is not a 200, when a stream breaks or carries an error event, or
when it does not finish within 30 s. At most --max-in-flight requests at once (default 400);
a start skipped because of that cap counts as an error too.

Every 10 s the RSS of each Faregate process is read from /proc/<pid>/status. At the end: the
money check (the balance went down by exactly the sum of the charges, nothing held, ledger
verify clean), then bench/results/<date>-soak.json and a printed summary: RSS first / last /
max per process, the RSS slope (least squares, MiB per hour, over the whole run and over its
second half, after warm-up), errors per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(ROOT))

from tests.harness import Deployment, Proc, deployment  # noqa: E402
from tests.services import libpq_url, sqlalchemy_url, with_dbname  # noqa: E402

from faregate.catalog.service import ModelPrice  # noqa: E402

PRICE = ModelPrice(1_000_000_000, 500_000_000, 3_000_000_000)
GRANT_NANO = 1_000_000_000_000  # $1000: never runs out
SAMPLE_EVERY_S = 10.0
REQUEST_TIMEOUT_S = 30.0


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def slope_mib_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, KiB) points, in MiB per hour."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mx) * (v - my) for t, v in points)
    return round(cov / var * 3600 / 1024, 2)


@dataclass
class Minute:
    started: int = 0
    ok: int = 0
    errors: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


class Load:
    def __init__(self, bases: list[str], key: str, rate: float, max_in_flight: int) -> None:
        self.bases = bases
        self.key = key
        self.rate = rate
        self.max_in_flight = max_in_flight
        self.minutes: list[Minute] = []
        self.in_flight = 0
        self.latencies_ms: list[float] = []
        self.t0 = 0.0

    def _minute(self, at: float) -> Minute:
        i = int((at - self.t0) // 60)
        while len(self.minutes) <= i:
            self.minutes.append(Minute())
        return self.minutes[i]

    async def one(self, session: aiohttp.ClientSession, i: int) -> None:
        started = time.monotonic()
        minute = self._minute(started)
        minute.started += 1
        stream = i % 2 == 1
        body: dict[str, Any] = {"model": "soak", "max_tokens": 16, "stream": stream,
                                "messages": [{"role": "user", "content": f"soak {i}"}]}
        if stream:
            body["stream_options"] = {"include_usage": True}
        kind = ""
        try:
            async with session.post(
                    f"{self.bases[i % len(self.bases)]}/v1/chat/completions",
                    data=orjson.dumps(body),
                    headers={"Authorization": f"Bearer {self.key}",
                             "Content-Type": "application/json"}) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    kind = f"http_{resp.status}"
                elif stream:
                    if b'"error"' in raw:
                        kind = "error_event"
                    elif not raw.rstrip().endswith(b"data: [DONE]") or b'"usage":{' not in raw:
                        kind = "stream_incomplete"
                elif not orjson.loads(raw).get("usage"):
                    kind = "no_usage"
        except TimeoutError:
            kind = "timeout"
        except (aiohttp.ClientError, ValueError) as exc:
            kind = type(exc).__name__
        finally:
            self.in_flight -= 1
        if kind:
            minute.error(kind)
        else:
            minute.ok += 1
            self.latencies_ms.append((time.monotonic() - started) * 1000)

    async def run(self, seconds: float) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout,
                                         connector=aiohttp.TCPConnector(limit=0)) as session:
            self.t0 = time.monotonic()
            tasks: set[asyncio.Task[None]] = set()
            i = 0
            while True:
                due = self.t0 + i / self.rate
                if due - self.t0 >= seconds:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if self.in_flight >= self.max_in_flight:
                    m = self._minute(due)
                    m.started += 1
                    m.error("skipped_in_flight_cap")
                else:
                    self.in_flight += 1
                    task = asyncio.create_task(self.one(session, i))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                i += 1
            if tasks:
                await asyncio.wait(tasks)


async def sample_rss(servers: list[Proc], samples: list[dict[str, Any]], t0: float,
                     stop: asyncio.Event) -> None:
    while True:
        samples.append({"t_s": round(time.monotonic() - t0, 1),
                        "rss_kib": [rss_kib(s.proc.pid) for s in servers]})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)
        if stop.is_set():
            samples.append({"t_s": round(time.monotonic() - t0, 1),
                            "rss_kib": [rss_kib(s.proc.pid) for s in servers]})
            return


async def soak(servers: list[Proc], key: str, seconds: float, rate: float,
               max_in_flight: int) -> tuple[Load, list[dict[str, Any]]]:
    load = Load([s.base_url for s in servers], key, rate, max_in_flight)
    samples: list[dict[str, Any]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(servers, samples, time.monotonic(), stop))

    async def progress() -> None:
        minute = 0
        while True:
            await asyncio.sleep(60)
            while len(load.minutes) > minute + 1:  # minute `minute` is over
                done = load.minutes[minute]
                log(f"minute {minute}: {done.ok} ok, {done.errors} errors; RSS MiB "
                    f"{[round(k / 1024, 1) for k in samples[-1]['rss_kib']]}")
                minute += 1

    reporter = asyncio.create_task(progress())
    try:
        await load.run(seconds)
    finally:
        stop.set()
        reporter.cancel()
        await sampler
    return load, samples


def create_database(admin: str) -> tuple[str, str]:
    name = f"faregate_soak_{time.strftime('%Y%m%d%H%M%S')}_{os.getpid()}"
    with psycopg.connect(libpq_url(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, sqlalchemy_url(with_dbname(admin, name))


def drop_database(admin: str, name: str) -> None:
    with psycopg.connect(libpq_url(admin), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def money_check(dep: Deployment, user: Any) -> dict[str, Any]:
    balance_nano, held, leased = dep.balance(user)
    [charged] = dep.query("SELECT COALESCE(SUM(charged_nano), 0) AS c, "
                          "COALESCE(SUM(cost_nano), 0) AS cost, COUNT(*) AS n "
                          "FROM usage_records")
    problems = dep.verify()
    return {"balance_nano": balance_nano, "held_nano": held, "leased_nano": leased,
            "usage_records": int(charged.n), "charged_nano": int(charged.c),
            "cost_nano": int(charged.cost),
            "balance_drop_equals_charges": GRANT_NANO - balance_nano == int(charged.c),
            "charges_equal_costs": int(charged.c) == int(charged.cost),
            "ledger_verify": problems,
            "ok": (balance_nano >= 0 and held == 0 and leased == 0 and not problems
                   and GRANT_NANO - balance_nano == int(charged.c) == int(charged.cost))}


def summarize(load: Load, samples: list[dict[str, Any]], servers: int) -> dict[str, Any]:
    per_server = []
    half = samples[-1]["t_s"] / 2 if samples else 0
    for i in range(servers):
        points = [(s["t_s"], float(s["rss_kib"][i])) for s in samples]
        mib = [v / 1024 for _, v in points]
        per_server.append({
            "rss_first_mib": round(mib[0], 1), "rss_last_mib": round(mib[-1], 1),
            "rss_max_mib": round(max(mib), 1),
            "slope_mib_per_hour": slope_mib_per_hour(points),
            "slope_second_half_mib_per_hour": slope_mib_per_hour(
                [p for p in points if p[0] >= half])})
    lat = sorted(load.latencies_ms)

    def pct(q: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None

    return {"servers": per_server,
            "requests": sum(m.started for m in load.minutes),
            "ok": sum(m.ok for m in load.minutes),
            "errors": sum(m.errors for m in load.minutes),
            "errors_per_minute": [m.errors for m in load.minutes],
            "ok_per_minute": [m.ok for m in load.minutes],
            "error_kinds": {k: sum(m.kinds.get(k, 0) for m in load.minutes)
                            for k in sorted({k for m in load.minutes for k in m.kinds})},
            "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": lat[-1] if lat else None}}


def print_summary(result: dict[str, Any]) -> None:
    s = result["summary"]
    print(f"\nFaregate soak: {result['minutes']} min at {result['rate']} req/s, "
          f"{len(s['servers'])} processes on PostgreSQL")
    print(f"requests {s['requests']}, ok {s['ok']}, errors {s['errors']} "
          f"{s['error_kinds'] or ''}; latency p50 {s['latency_ms']['p50']} ms, "
          f"p99 {s['latency_ms']['p99']} ms")
    print("errors per minute: " + " ".join(str(e) for e in s["errors_per_minute"]))
    for i, srv in enumerate(s["servers"]):
        print(f"process {i}: RSS first {srv['rss_first_mib']} MiB, last {srv['rss_last_mib']} "
              f"MiB, max {srv['rss_max_mib']} MiB; slope {srv['slope_mib_per_hour']} MiB/h "
              f"(second half {srv['slope_second_half_mib_per_hour']} MiB/h)")
    m = result["money"]
    print(f"money: {'OK' if m['ok'] else 'PROBLEM'} ({m['usage_records']} usage records, "
          f"charged {m['charged_nano']} nano-USD = costs {m['cost_nano']}; "
          f"ledger verify: {m['ledger_verify'] or 'clean'})")
    print(f"written: {result['file']}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float,
                   default=float(os.environ.get("FAREGATE_SOAK_MINUTES", "20")))
    p.add_argument("--rate", type=float, default=20.0, help="requests per second")
    p.add_argument("--servers", type=int, default=2)
    p.add_argument("--max-in-flight", type=int, default=400)
    p.add_argument("--pg-url", default=os.environ.get("FAREGATE_SOAK_PG_URL")
                   or os.environ.get("FAREGATE_TEST_PG_ADMIN_URL"))
    p.add_argument("--label", default="", help="appended to the result file's name")
    args = p.parse_args(argv)
    if not args.pg_url:
        p.error("no PostgreSQL: pass --pg-url, or run through scripts/testenv.py (make soak)")
    dbname, url = create_database(args.pg_url)
    log(f"database {dbname}; {args.servers} processes; {args.rate} req/s for "
        f"{args.minutes} min")
    work = Path(tempfile.mkdtemp(prefix="faregate-soak-"))
    started_at = dt.datetime.now(dt.UTC)
    try:
        with deployment(work / "fg", url) as dep:
            upstream = dep.start_devmodel(token_latency_ms=5.0)
            dep.add_upstream("dev", f"{upstream.base_url}/v1", {"soak": "faregate-dev"}, PRICE)
            user = dep.new_user(f"soak-{secrets.token_hex(3)}@example.com", GRANT_NANO)
            _, key = dep.new_key(user)
            servers = [dep.start_server(FAREGATE_DEV_MODEL="false")
                       for _ in range(args.servers)]
            log(f"processes {[s.proc.pid for s in servers]} on "
                f"{[s.base_url for s in servers]}; logs in {work / 'fg'}")
            load, samples = asyncio.run(soak(servers, key, args.minutes * 60, args.rate,
                                             args.max_in_flight))
            alive = [s.proc.poll() is None for s in servers]
            dep.stop_all_servers()  # settles everything and returns the leases
            money = money_check(dep, user)
    finally:
        drop_database(args.pg_url, dbname)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = started_at.strftime("%Y-%m-%d-%H%M")
    out = RESULTS_DIR / f"{stamp}-soak{('-' + args.label) if args.label else ''}.json"
    result = {"kind": "soak", "started_at": started_at.isoformat(), "minutes": args.minutes,
              "rate": args.rate, "servers": args.servers, "database": "postgresql",
              "sample_every_s": SAMPLE_EVERY_S, "host": platform.node(),
              "cpus": os.cpu_count(), "python": platform.python_version(),
              "processes_alive_at_end": alive,
              "summary": summarize(load, samples, args.servers), "money": money,
              "rss_samples": samples, "file": str(out.relative_to(ROOT)),
              "work_dir": str(work)}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_summary(result)
    return 0 if money["ok"] and all(alive) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
