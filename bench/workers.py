"""One worker vs several, on PostgreSQL: server CPU time per request, interleaved.

    make bench-workers                       # 5 rounds, json and stream, c=32
    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/workers.py --rounds 3

Issue 8's measure: the CPU time (user + sys) of every Faregate process (the supervisor and its
workers) divided by the requests answered, for `faregate serve --workers 2` against
`--workers 1`, on PostgreSQL, at the same load. This 2-core machine cannot show wall-clock
scaling while it also runs the load generator and the upstream, so both servers are pinned to
core 0 and wrk + the upstream to core 1 (as in bench/run.py).

bench/run.py measures its targets one after the other, so a change in the machine's other load
between them (these machines are shared) lands on one side of the ratio. Here both servers run
at once (each on its own fresh database, the idle one costing ~1 % of a core) and the cells
alternate: round 1 w1 then w2, round 2 w2 then w1, ...; every round gives a ratio and the
median of the rounds is reported. Each process's CPU is split into its event-loop thread and
its other threads (the database threads, mostly group commits).

`--cells 1x32,1x16,2x32` measures any (workers x concurrency) cells against the first: with
one worker at half the load as well, it splits the two-worker cost into "each process serves
half the load" and "two processes share one core".

PostgreSQL: --pg-url, else $FAREGATE_TEST_PG_ADMIN_URL (what scripts/testenv.py exports), else
postgresql://postgres@127.0.0.1:5432/postgres. Writes bench/results/<date>-workers[-desc].md
and .json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py: its process and wrk helpers

GOAL = 1.15  # issue 8: CPU per request with 2 workers within 15 % of 1 worker


@dataclass
class Server:
    workers: int
    env: dict[str, str]
    key_file: Path
    db: tuple[str, str] | None
    proc: Any = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"


@dataclass
class Cell:
    round: int
    workers: int
    mode: str
    concurrency: int = 0
    requests: int = 0
    errors: int = 0
    rps: float = float("nan")
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    cpu_ms_per_req: float = float("nan")
    loop_ms_per_req: float = float("nan")  # event-loop threads
    other_ms_per_req: float = float("nan")  # database and other threads
    sys_ms_per_req: float = float("nan")  # kernel time, all threads
    switches_per_req: float = float("nan")  # context switches, all threads


@dataclass
class Usage:
    loop: float = 0.0  # CPU seconds of the event-loop threads
    other: float = 0.0  # CPU seconds of the other threads
    sys: float = 0.0  # kernel CPU seconds of all threads
    switches: int = 0  # voluntary + involuntary context switches of all threads


def thread_cpu(root: int) -> Usage:
    """CPU time and context switches of root and its descendants, per kind of thread; a
    process's main thread is the one whose id is the process id."""
    pids, stack = set(), [root]
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            raw = Path(stat).read_text()
        except OSError:
            continue
        f = raw[raw.rfind(")") + 2:].split()
        children.setdefault(int(f[1]), []).append(int(stat.split("/")[2]))
    while stack:
        p = stack.pop()
        if p not in pids:
            pids.add(p)
            stack.extend(children.get(p, []))
    out = Usage()
    for pid in pids:
        for task in glob.glob(f"/proc/{pid}/task/*/stat"):
            try:
                raw = Path(task).read_text()
                status = Path(task).with_name("status").read_text()
            except OSError:
                continue
            f = raw[raw.rfind(")") + 2:].split()
            cpu = (int(f[11]) + int(f[12])) / bench.CLK_TCK
            out.sys += int(f[12]) / bench.CLK_TCK
            out.switches += sum(int(line.split()[1]) for line in status.splitlines()
                                if "ctxt_switches:" in line)
            if task.split("/")[4] == str(pid):
                out.loop += cpu
            else:
                out.other += cpu
    return out


def setup(workers: int, pg_url: str, run_dir: Path, upstream: str) -> Server:
    url, created = bench.make_pg_database(pg_url)
    data = run_dir / f"w{workers}"
    data.mkdir()
    env = dict(os.environ, FAREGATE_DATA_DIR=str(data), FAREGATE_DATABASE_URL=url,
               FAREGATE_DEV_MODEL="false", FAREGATE_LOG_LEVEL="warning")
    env.pop("FAREGATE_REDIS_URL", None)  # as bench/run.py: limits in memory, no Redis

    def cli(*argv: str) -> str:
        res = subprocess.run([str(bench.FAREGATE_BIN), *argv], env=env, timeout=120,
                                   capture_output=True, text=True, check=False)
        if res.returncode:
            raise SystemExit(f"faregate {' '.join(argv)} failed: {res.stderr[-400:]}")
        return res.stdout

    cli("db", "upgrade")
    cli("upstreams", "add", "bench", "--base-url", upstream + "/v1", "--models", bench.MODEL,
        "--json")
    cli("models", "set-price", bench.MODEL, "--input", "0.15", "--output", "0.6")
    cli("users", "create", "bench@bench.example.com", "--json")
    cli("credits", "grant", "bench@bench.example.com", "1000", "--reason", "bench", "--json")
    key = json.loads(cli("keys", "create", "bench@bench.example.com", "--json"))["key"]
    key_file = run_dir / f"w{workers}-key.txt"
    key_file.write_text(key + "\n")
    server = Server(workers, env, key_file, created)
    server.port = bench.free_port()
    server.proc = bench.start_proc(
        bench.pin([str(bench.FAREGATE_BIN), "serve", "--host", "127.0.0.1", "--port",
                   str(server.port), "--workers", str(workers)], bench.SERVER_CORE),
        env, run_dir / f"w{workers}-server.log")
    if not bench.wait_http(f"http://127.0.0.1:{server.port}/healthz", server.proc, 60):
        raise SystemExit(f"serve --workers {workers} did not start; see {run_dir}")
    return server


def label(workers: int, concurrency: int) -> str:
    return f"w{workers}c{concurrency}"


def measure(server: Server, mode: str, rnd: int, conc: int, args: argparse.Namespace,
            bodies: dict[str, Path]) -> Cell:
    cell = Cell(rnd, server.workers, mode, conc)
    bench.run_wrk(server.url, bodies[mode], server.key_file, conc, 1,
                  bench.CLIENT_CORE)  # warm-up
    bench.quiesce(server.proc.pid)
    u0 = thread_cpu(server.proc.pid)
    cpu0 = bench.proc_tree_cpu(server.proc.pid)
    res, _ = bench.run_wrk(server.url, bodies[mode], server.key_file, conc, args.duration,
                           bench.CLIENT_CORE)
    cpu1 = bench.proc_tree_cpu(server.proc.pid)
    u1 = thread_cpu(server.proc.pid)
    ok = res["requests"] - res["err_status"]
    cell.requests = res["requests"]
    cell.errors = sum(int(v) for k, v in res.items() if k.startswith("err_"))
    cell.rps = ok / (res["duration_us"] / 1e6)
    cell.p50_ms, cell.p99_ms = res["p50_us"] / 1000, res["p99_us"] / 1000
    if ok:
        cell.cpu_ms_per_req = (cpu1 - cpu0) * 1000 / ok
        cell.loop_ms_per_req = (u1.loop - u0.loop) * 1000 / ok
        cell.other_ms_per_req = (u1.other - u0.other) * 1000 / ok
        cell.sys_ms_per_req = (u1.sys - u0.sys) * 1000 / ok
        cell.switches_per_req = (u1.switches - u0.switches) / ok
    bench.log(f"  round {rnd} {label(server.workers, conc):<7} {mode:<6} {cell.rps:8.0f} req/s  "
              f"p50 {cell.p50_ms:6.2f} ms  p99 {cell.p99_ms:7.2f} ms  cpu "
              f"{cell.cpu_ms_per_req:.3f} ms/req (loop {cell.loop_ms_per_req:.3f}, other "
              f"{cell.other_ms_per_req:.3f})  errors {cell.errors}")
    return cell


def summarize(cells: list[Cell], specs: list[tuple[int, int]],
              modes: list[str]) -> dict[str, Any]:
    """Every cell against the first (`specs[0]`), per mode: the median of the per-round
    ratios of CPU per request, and each cell's medians."""
    base = specs[0]
    out: dict[str, Any] = {}
    for mode in modes:
        def of(spec: tuple[int, int], rnd: int | None = None,
               mode: str = mode) -> list[Cell]:
            return [c for c in cells if (c.workers, c.concurrency, c.mode) == (*spec, mode)
                    and (rnd is None or c.round == rnd)]

        def med(spec: tuple[int, int], attr: str) -> float:
            return float(statistics.median(getattr(c, attr) for c in of(spec)))

        for spec in specs[1:]:
            ratios = []
            for rnd in sorted({c.round for c in cells}):
                a, b = of(base, rnd), of(spec, rnd)
                if a and b:
                    ratios.append(b[0].cpu_ms_per_req / a[0].cpu_ms_per_req)
            out[f"{mode} {label(*spec)}/{label(*base)}"] = {
                "mode": mode, "base": label(*base), "cell": label(*spec),
                "goal_applies": spec[0] != base[0],
                "ratios": [round(r, 3) for r in ratios],
                "median_ratio": round(statistics.median(ratios), 3) if ratios else None,
                **{f"{side}_{attr}": round(med(x, attr), 4)
                   for side, x in (("base", base), ("cell", spec))
                   for attr in ("cpu_ms_per_req", "loop_ms_per_req", "other_ms_per_req",
                                "sys_ms_per_req", "switches_per_req", "rps", "p50_ms",
                                "p99_ms")},
            }
    return out


def render(meta: dict[str, Any], summary: dict[str, Any], cells: list[Cell]) -> str:
    lines = [f"# One worker vs several on PostgreSQL — {meta['started']}", "",
             f"- host: {meta['host']}; load avg at start {meta['loadavg']}",
             f"- {meta['rounds']} rounds × {meta['duration']} s per cell; cells (workers × "
             f"concurrency in total): {', '.join(meta['cells'])}, the first the baseline;"
             " servers on core 0, wrk + upstream on core 1, cells alternating (forward, then"
             " backward, ...)", "",
             "| comparison | CPU ms/req (median) | event loop | other threads | of it kernel "
             "| switches/req | req/s | p50 ms | p99 ms | ratio per round | median ratio "
             "| goal ≤ 1.15 (more workers vs fewer) |",
             "|---|---|---|---|---|---|---|---|---|---|---:|---|"]
    for name, s in summary.items():
        def pair(attr: str, fmt: str, s: dict[str, Any] = s) -> str:
            return f"{s[f'base_{attr}']:{fmt}} → {s[f'cell_{attr}']:{fmt}}"

        goal = ("met" if s["median_ratio"] <= GOAL else "NOT met") if s["goal_applies"] \
            else "—"
        lines.append(
            f"| {name} | {pair('cpu_ms_per_req', '.3f')} | {pair('loop_ms_per_req', '.3f')} | "
            f"{pair('other_ms_per_req', '.3f')} | {pair('sys_ms_per_req', '.3f')} | "
            f"{pair('switches_per_req', '.2f')} | {pair('rps', ',.0f')} | "
            f"{pair('p50_ms', '.1f')} | {pair('p99_ms', '.1f')} | "
            f"{', '.join(f'{r:.2f}' for r in s['ratios'])} | {s['median_ratio']:.2f} | "
            f"{goal} |")
    lines += ["", "| round | workers | mode | c | req/s | p50 ms | p99 ms | errors | CPU ms/req "
              "| event loop | other | kernel | switches/req |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cells:
        lines.append(f"| {c.round} | {c.workers} | {c.mode} | {c.concurrency} | "
                     f"{c.rps:,.0f} | {c.p50_ms:.2f} | "
                     f"{c.p99_ms:.2f} | {c.errors} | {c.cpu_ms_per_req:.3f} | "
                     f"{c.loop_ms_per_req:.3f} | {c.other_ms_per_req:.3f} | "
                     f"{c.sys_ms_per_req:.3f} | {c.switches_per_req:.2f} |")
    lines += ["", "Money check after the run (each server's database): "
              + "; ".join(f"w{w}: {v}" for w, v in meta["checks"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=int, default=6, help="seconds per cell")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--per-worker", action="store_true",
                   help="the same concurrency per worker (N workers get N × --concurrency) "
                        "instead of the same in total")
    p.add_argument("--modes", default="json,stream")
    p.add_argument("--workers", default="1,2", help="the first is the baseline")
    p.add_argument("--cells", default="",
                   help="workers x concurrency cells, e.g. 1x32,1x16,2x32 (the first is the "
                        "baseline); instead of --workers, --concurrency and --per-worker")
    p.add_argument("--pg-url", default=os.environ.get("FAREGATE_TEST_PG_ADMIN_URL")
                   or "postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--desc", default="")
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    if args.cells:
        specs = [(int(w), int(c)) for w, c in (x.split("x") for x in args.cells.split(","))]
    else:
        specs = [(n, args.concurrency * (n if args.per_worker else 1))
                 for n in (int(n) for n in args.workers.split(","))]
    counts = sorted({w for w, _ in specs}, key=[w for w, _ in specs].index)
    bench.ensure_wrk()
    run_dir = Path(tempfile.mkdtemp(prefix="faregate-workers-"))
    bodies = {}
    for mode in modes:
        bodies[mode] = run_dir / f"body-{mode}.json"
        bodies[mode].write_bytes(bench.chat_body(mode == "stream"))
    meta: dict[str, Any] = {
        "started": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "host": f"{platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "rounds": args.rounds, "duration": args.duration,
        "cells": [label(*x) for x in specs], "workers": counts, "checks": {}}
    up_port = bench.free_port()
    upstream = bench.start_proc(
        bench.pin([bench.PY, str(bench.BENCH_DIR / "upstream.py"), "--port", str(up_port)],
                  bench.CLIENT_CORE), None, run_dir / "upstream.log")
    servers: list[Server] = []
    cells: list[Cell] = []
    try:
        if not bench.wait_http(f"http://127.0.0.1:{up_port}/healthz", upstream, 20):
            raise SystemExit("upstream did not start")
        servers = [setup(n, args.pg_url, run_dir, f"http://127.0.0.1:{up_port}")
                   for n in counts]
        by_workers = {s.workers: s for s in servers}
        for rnd in range(1, args.rounds + 1):
            order = specs if rnd % 2 else specs[::-1]
            for mode in modes:
                for workers, conc in order:
                    cells.append(measure(by_workers[workers], mode, rnd, conc, args, bodies))
        time.sleep(1.0)
        for server in servers:
            bench.stop_proc(server.proc, grace=20)
            verify = bench._run_capture([str(bench.FAREGATE_BIN), "ledger", "verify"],
                                        server.env)
            meta["checks"][server.workers] = "ledger verify " + (
                "clean" if verify["ok"] else "FAILED: " + verify["output"])
    finally:
        for server in servers:
            bench.stop_proc(server.proc)
            if server.db:
                bench.drop_pg_database(*server.db)
        bench.stop_proc(upstream)
    summary = summarize(cells, specs, modes)
    md = render(meta, summary, cells)
    print(md)
    bench.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = bench.result_stem("workers" + (f"-{args.desc}" if args.desc else ""))
    (bench.RESULTS_DIR / f"{stem}.md").write_text(md)
    (bench.RESULTS_DIR / f"{stem}.json").write_text(bench._json_dump(
        {"meta": meta, "summary": summary, "cells": [vars(c) for c in cells]}))
    print(f"wrote bench/results/{stem}.md and .json")
    errors = sum(c.errors for c in cells)
    return 1 if errors or any("FAILED" in v for v in meta["checks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
