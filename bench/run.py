"""Faregate benchmark: direct vs bare proxy vs Faregate vs LiteLLM, side by side, in one run.

    .venv/bin/python bench/run.py            # full run (~10 min; more on first LiteLLM install)
    .venv/bin/python bench/run.py --quick    # ~2 min smoke run
    .venv/bin/python bench/run.py --help

Writes bench/results/<date>-<desc>.md and .json and prints the markdown. See bench/README.md.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
RESULTS_DIR = BENCH_DIR / "results"


def result_stem(name: str) -> str:
    """`<date>-<HHMM>-<name>`, with `-2`, `-3`, ... added when a run of the same minute and
    name already wrote its files (the figures of the earlier run are kept)."""
    stem = f"{dt.datetime.now().strftime('%Y-%m-%d-%H%M')}-{name}"
    n, out = 1, stem
    while any(RESULTS_DIR.glob(f"{out}.*")):
        n += 1
        out = f"{stem}-{n}"
    return out
PY = sys.executable
BENCH_TIER = 5  # the usage tier --rate-limits puts bench organizations on
FAREGATE_BIN = ROOT / ".venv" / "bin" / "faregate"
LITELLM_VENV = WORK_DIR / "litellm-venv"
WRK_SCRIPT = BENCH_DIR / "wrk_post.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MODEL = "bench-model"
SERVER_CORE = "0"
CLIENT_CORE = "1"

# ---------------------------------------------------------------------------------------------
# small helpers


def log(msg: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[bench {stamp}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def tail(text: str | bytes | None, n: int = 600) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    text = text.strip()
    return text if len(text) <= n else "…" + text[-n:]


def http_request(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers or {},
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def chat_body(stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
        "max_tokens": 16,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


def fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        return f"{x:,.{digits}f}"
    return str(x)


# ---------------------------------------------------------------------------------------------
# process management (only processes we start; stopped by their own process group id)

_PROCS: list[subprocess.Popen[bytes]] = []


def pin(cmd: list[str], core: str | None) -> list[str]:
    return ["taskset", "-c", core, *cmd] if core is not None else cmd


def start_proc(
    cmd: list[str], env: dict[str, str] | None, logfile: Path
) -> subprocess.Popen[bytes]:
    out = open(logfile, "ab")  # noqa: SIM115 - kept open for the child's lifetime
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(ROOT))
    _PROCS.append(proc)
    return proc


def stop_proc(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    else:
        # the leader is gone; make sure no child of its group lingers
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    if proc in _PROCS:
        _PROCS.remove(proc)


def _cleanup() -> None:
    for proc in list(_PROCS):
        stop_proc(proc, grace=5)


atexit.register(_cleanup)


def _on_signal(signum: int, _frame: Any) -> None:
    _cleanup()
    sys.exit(128 + signum)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            status, _ = http_request(url, timeout=2)
            if status == 200:
                return True
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    return False


def proc_tree_cpu(pid: int) -> float:
    """CPU seconds (user+sys, incl. reaped children) of pid and its live descendants."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        p = int(entry)
        stats[p] = fields
        children.setdefault(int(fields[1]), []).append(p)
    total = 0
    stack = [pid]
    seen = set()
    while stack:
        p = stack.pop()
        if p in seen or p not in stats:
            continue
        seen.add(p)
        f = stats[p]
        # fields after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        stack.extend(children.get(p, []))
    return total / CLK_TCK


def core_busy() -> dict[str, float]:
    """Busy CPU seconds per core ("cpu0", "cpu1", ...) from /proc/stat."""
    out: dict[str, float] = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                v = [int(x) for x in vals]
                idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
                out[name] = (sum(v[:8]) - idle) / CLK_TCK
    return out


def quiesce(pid: int, timeout: float = 15.0, interval: float = 0.25, idle: float = 0.2) -> float:
    """Wait until the server is (nearly) idle, e.g. done with requests the warmup abandoned.

    Returns the seconds waited. Slow servers (LiteLLM at c=256) still work through the warmup's
    in-flight requests after wrk exits; measuring then would charge them to the next window.
    """
    t0 = time.monotonic()
    prev = proc_tree_cpu(pid)
    while time.monotonic() - t0 < timeout:
        time.sleep(interval)
        cur = proc_tree_cpu(pid)
        if (cur - prev) / interval <= idle:
            break
        prev = cur
    return time.monotonic() - t0


# ---------------------------------------------------------------------------------------------
# load generation


@dataclass
class Cell:
    target: str
    mode: str  # "json" | "stream"
    concurrency: int
    keys: int
    rps: float = float("nan")
    p50_ms: float = float("nan")
    p90_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    requests: int = 0
    errors: int = 0
    error_detail: dict[str, int] = field(default_factory=dict)
    server_cpu_ms_per_req: float = float("nan")
    server_cpu_util: float = float("nan")
    loadgen_cpu_util: float = float("nan")
    upstream_cpu_util: float = float("nan")
    core0_busy: float = float("nan")
    core1_busy: float = float("nan")
    duration_s: float = float("nan")
    note: str = ""


def run_wrk(url: str, body_file: Path, keys_file: Path | None, concurrency: int,
            duration: float, pin_core: str | None) -> tuple[dict[str, Any], float]:
    """Run wrk once; return (parsed BENCH_RESULT, wrk's own CPU seconds)."""
    env = dict(os.environ)
    env["BENCH_BODY_FILE"] = str(body_file)
    env["BENCH_KEYS_FILE"] = str(keys_file) if keys_file else ""
    env["BENCH_PATH"] = "/" + url.split("/", 3)[3]
    origin = "/".join(url.split("/", 3)[:3])
    cmd = pin(["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s",
               "--timeout", "10s", "-s", str(WRK_SCRIPT), origin], pin_core)
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        timer = threading.Timer(duration + 30, proc.kill)
        timer.start()
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    for line in text.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):]), rusage.ru_utime + rusage.ru_stime
    raise RuntimeError(f"wrk failed (rc={proc.returncode}): {tail(text)}")


@dataclass
class Target:
    name: str
    url: str  # full chat completions URL
    pid: Callable[[], int]  # pid of the server under test
    alive: Callable[[], bool]
    keys_file: Path | None = None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cells: list[Cell] = []
        self.ttfb: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, dict[str, Any]] = {}
        self.checks: dict[str, Any] = {}
        self.idle_util: dict[str, float] = {}  # server CPU util with no load, before the cells
        self.run_dir = Path(tempfile.mkdtemp(prefix="faregate-bench-"))
        self.logs = self.run_dir / "logs"
        self.logs.mkdir()
        self.body_files = {}
        for mode in ("json", "stream"):
            p = self.run_dir / f"body-{mode}.json"
            p.write_bytes(chat_body(mode == "stream"))
            self.body_files[mode] = p
        self.upstream: subprocess.Popen[bytes] | None = None
        self.upstream_port = 0
        self.server_core = SERVER_CORE if args.pin else None
        self.client_core = CLIENT_CORE if args.pin else None

    # ---- upstream ------------------------------------------------------------------------
    def start_upstream(self) -> None:
        self.upstream_port = free_port()
        cmd = pin([PY, str(BENCH_DIR / "upstream.py"), "--port", str(self.upstream_port)],
                  self.client_core)
        self.upstream = start_proc(cmd, None, self.logs / "upstream.log")
        if not wait_http(f"http://127.0.0.1:{self.upstream_port}/healthz", self.upstream, 20):
            raise SystemExit("fast upstream failed to start; see " + str(self.logs))
        log(f"fast upstream on 127.0.0.1:{self.upstream_port} (pid {self.upstream.pid})")

    @property
    def upstream_origin(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}"

    # ---- measurement ---------------------------------------------------------------------
    def sanity(self, target: Target, keys: list[str]) -> str | None:
        """One non-stream and one stream request; return an error string or None."""
        headers = {"Content-Type": "application/json"}
        if keys:
            headers["Authorization"] = "Bearer " + keys[0]
        try:
            status, body = http_request(target.url, chat_body(False), headers, timeout=30)
            if status != 200:
                return f"non-stream request → HTTP {status}: {tail(body, 300)}"
            data = json.loads(body)
            if not data.get("choices"):
                return f"non-stream response has no choices: {tail(body, 300)}"
            status, body = http_request(target.url, chat_body(True), headers, timeout=30)
            if status != 200:
                return f"stream request → HTTP {status}: {tail(body, 300)}"
            if b"[DONE]" not in body or b"chat.completion.chunk" not in body:
                return f"stream response malformed: {tail(body, 300)}"
        except (OSError, ValueError) as exc:
            return f"request failed: {exc!r}"
        return None

    def measure(self, target: Target, label: str, mode: str, concurrency: int, n_keys: int,
                keys_file: Path | None) -> Cell:
        cell = Cell(target=label, mode=mode, concurrency=concurrency, keys=n_keys)
        if not target.alive():
            cell.note = "server not running"
            return cell
        body_file = self.body_files[mode]
        try:
            if self.args.warmup > 0:
                run_wrk(target.url, body_file, keys_file, concurrency, self.args.warmup,
                        self.client_core)
            pid = target.pid()
            waited = quiesce(pid)
            if waited > 1:
                log(f"  ({label} still busy after warmup: waited {waited:.1f}s to go idle)")
            assert self.upstream is not None
            up0 = proc_tree_cpu(self.upstream.pid)
            cpu0 = proc_tree_cpu(pid)
            busy0 = core_busy()
            t0 = time.monotonic()
            res, wrk_cpu = run_wrk(target.url, body_file, keys_file, concurrency,
                                   self.args.duration, self.client_core)
            wall = time.monotonic() - t0
            busy1 = core_busy()
            cpu1 = proc_tree_cpu(pid)
            up1 = proc_tree_cpu(self.upstream.pid)
        except (RuntimeError, OSError) as exc:
            cell.note = f"load run failed: {exc}"
            log(f"  {label} {mode} c={concurrency}: {cell.note}")
            return cell
        dur = res["duration_us"] / 1e6
        errs = {k[4:]: int(v) for k, v in res.items() if k.startswith("err_") and v}
        ok = res["requests"] - res["err_status"]
        cell.duration_s = dur
        cell.requests = res["requests"]
        cell.errors = sum(errs.values())
        cell.error_detail = errs
        cell.rps = ok / dur if dur > 0 else float("nan")
        if res["requests"] > 0:
            cell.p50_ms = res["p50_us"] / 1000
            cell.p90_ms = res["p90_us"] / 1000
            cell.p99_ms = res["p99_us"] / 1000
            cell.max_ms = res["lat_max_us"] / 1000
        if ok > 0:
            cell.server_cpu_ms_per_req = (cpu1 - cpu0) * 1000 / ok
        cell.server_cpu_util = (cpu1 - cpu0) / wall
        cell.loadgen_cpu_util = wrk_cpu / wall
        cell.upstream_cpu_util = (up1 - up0) / wall
        cell.core0_busy = (busy1.get("cpu0", 0) - busy0.get("cpu0", 0)) / wall
        cell.core1_busy = (busy1.get("cpu1", 0) - busy0.get("cpu1", 0)) / wall
        if not target.alive():
            cell.note = "server died during run"
        log(f"  {label:<14} {mode:<6} c={concurrency:<4} {cell.rps:>9.1f} req/s  "
            f"p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  "
            f"cpu {cell.server_cpu_ms_per_req:6.3f} ms/req  errors {cell.errors}")
        return cell

    def run_matrix(self, target: Target, label: str, n_keys: int, keys_file: Path | None) -> None:
        pid = target.pid()
        quiesce(pid)
        cpu0, t0 = proc_tree_cpu(pid), time.monotonic()
        time.sleep(1.0)
        self.idle_util[label] = (proc_tree_cpu(pid) - cpu0) / (time.monotonic() - t0)
        for mode in self.args.modes:
            for c in self.args.concurrency:
                self.cells.append(self.measure(target, label, mode, c, n_keys, keys_file))

    def run_ttfb(self, target: Target, label: str, keys_file: Path | None) -> None:
        cmd = [PY, str(BENCH_DIR / "ttfb_probe.py"), "--url", target.url,
               "--body-file", str(self.body_files["stream"]),
               "--n", str(self.args.ttfb_n), "--warmup", str(max(5, self.args.ttfb_n // 10))]
        if keys_file:
            cmd += ["--keys-file", str(keys_file)]
        pid = target.pid()
        cpu0 = proc_tree_cpu(pid)
        try:
            out = subprocess.run(pin(cmd, self.client_core), capture_output=True, timeout=300,
                                 check=True)
            res = json.loads(out.stdout.decode().strip().splitlines()[-1])
        except (subprocess.SubprocessError, ValueError, IndexError) as exc:
            log(f"  {label}: ttfb probe failed: {exc}")
            self.ttfb[label] = {"error": str(exc)}
            return
        cpu1 = proc_tree_cpu(pid)
        total = res["n"] + max(5, self.args.ttfb_n // 10)
        res["server_cpu_ms_per_req"] = (cpu1 - cpu0) * 1000 / total if total else float("nan")
        self.ttfb[label] = res
        log(f"  {label:<14} TTFB c=1 stream: p50 {res['ttfb_p50_ms']:.3f} ms  "
            f"p99 {res['ttfb_p99_ms']:.3f} ms  (end p50 {res['total_p50_ms']:.3f} ms, "
            f"errors {res['errors']}, bad streams {res['bad_streams']})")

    def skip(self, name: str, reason: str) -> None:
        log(f"SKIP {name}: {reason}")
        self.targets[name] = {"status": "skipped", "reason": reason}

    # ---- targets -------------------------------------------------------------------------
    def bench_direct(self) -> None:
        assert self.upstream is not None
        up = self.upstream
        t = Target("direct", self.upstream_origin + "/v1/chat/completions",
                   pid=lambda: up.pid, alive=lambda: up.poll() is None)
        err = self.sanity(t, [])
        if err:
            self.skip("direct", err)
            return
        log("== direct (load generator → fast upstream)")
        self.targets["direct"] = {"status": "ran", "url": t.url,
                                  "note": "server under test = the upstream itself (core 1)"}
        self.run_matrix(t, "direct", 0, None)
        self.run_ttfb(t, "direct", None)

    def bench_bare(self) -> None:
        port = free_port()
        cmd = pin([PY, str(BENCH_DIR / "bare_proxy.py"), "--port", str(port),
                   "--upstream", self.upstream_origin], self.server_core)
        proc = start_proc(cmd, None, self.logs / "bare.log")
        try:
            if not wait_http(f"http://127.0.0.1:{port}/healthz", proc, 20):
                self.skip("bare", "bare proxy did not start: " +
                          tail((self.logs / "bare.log").read_text()))
                return
            t = Target("bare", f"http://127.0.0.1:{port}/v1/chat/completions",
                       pid=lambda: proc.pid, alive=lambda: proc.poll() is None)
            err = self.sanity(t, [])
            if err:
                self.skip("bare", err)
                return
            log("== bare (uvicorn raw ASGI + shared aiohttp session)")
            self.targets["bare"] = {"status": "ran", "url": t.url}
            self.run_matrix(t, "bare", 0, None)
            self.run_ttfb(t, "bare", None)
        finally:
            stop_proc(proc)

    # ---- faregate ------------------------------------------------------------------------
    def bench_faregate(self, label: str, db_kind: str, db_url: str | None,
                       workers: int = 1) -> None:
        if not FAREGATE_BIN.exists():
            self.skip(label, f"{FAREGATE_BIN} not found (is the venv installed?)")
            return
        data_dir = self.run_dir / label
        data_dir.mkdir()
        created_db: tuple[str, str] | None = None
        if db_kind == "sqlite":
            url = f"sqlite:///{data_dir}/fg.db"
        else:
            assert db_url
            try:
                url, created_db = make_pg_database(db_url)
            except Exception as exc:
                self.skip(label, f"cannot prepare PostgreSQL database: {exc!r}")
                return
        env = dict(os.environ)
        env.update({
            "FAREGATE_DATA_DIR": str(data_dir),
            "FAREGATE_DATABASE_URL": url,
            "FAREGATE_DEV_MODEL": "false",
            "FAREGATE_RUN_BACKGROUND_JOBS": "true",
            "FAREGATE_LOG_LEVEL": self.args.faregate_log_level,
        })
        cli_log = self.logs / f"{label}-cli.log"

        def cli(*argv: str, timeout: float = 120) -> str:
            cmd = [str(FAREGATE_BIN), *argv]
            try:
                res = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout,
                                     cwd=str(ROOT))
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"`faregate {' '.join(argv)}` timed out") from exc
            with open(cli_log, "ab") as f:
                f.write(f"$ faregate {' '.join(argv)}  (rc={res.returncode})\n".encode())
                f.write(res.stdout + res.stderr + b"\n")
            if res.returncode != 0:
                raise RuntimeError(f"`faregate {' '.join(argv)}` failed (rc={res.returncode}): "
                                   f"{tail(res.stderr or res.stdout, 400)}")
            return res.stdout.decode()

        def cli_json(*argv: str) -> Any:
            out = cli(*argv)
            try:
                return json.loads(out)
            except ValueError:
                # tolerate log lines before the JSON document
                start = min((i for i in (out.find("{"), out.find("[")) if i >= 0), default=-1)
                if start < 0:
                    raise RuntimeError(f"`faregate {' '.join(argv)}` printed no JSON: "
                                       f"{tail(out, 200)}") from None
                return json.loads(out[start:])

        def make_user(i: int) -> str:
            email = f"bench-{i}@bench.example.com"
            cli_json("users", "create", email, "--json")
            cli_json("credits", "grant", email, str(self.args.credits), "--reason", "bench",
                     "--json")
            if self.args.rate_limits:  # a tier with limits: the limiter runs on every call
                cli_json("orgs", "set-tier", email, str(BENCH_TIER), "--json")
            key = cli_json("keys", "create", email, "--json")
            return str(key["key"])

        server: subprocess.Popen[bytes] | None = None
        try:
            log(f"== {label}: setting up (db={db_kind}, data dir {data_dir})")
            t0 = time.monotonic()
            try:
                cli("db", "upgrade")
                cli_json("upstreams", "add", "bench", "--base-url",
                         self.upstream_origin + "/v1", "--models", MODEL, "--json")
                cli("models", "set-price", MODEL, "--input", "0.15", "--output", "0.6")
                if self.args.rate_limits:  # limits far above what the bench can reach
                    cli_json("tiers", "set", str(BENCH_TIER), "--rpm", "1000000000",
                             "--tpm", "1000000000000", "--key-rpm", "500000000",
                             "--key-tpm", "500000000000", "--json")
                one_key = make_user(0)
                many = self.args.many_keys
                many_keys: list[str] = []
                if many > 1:
                    with ThreadPoolExecutor(max_workers=4) as pool:
                        many_keys = list(pool.map(make_user, range(1, many + 1)))
            except (RuntimeError, ValueError, KeyError, TypeError) as exc:
                self.skip(label, f"Faregate CLI setup failed: {exc}")
                return
            log(f"  setup done in {time.monotonic() - t0:.1f}s "
                f"(1 + {len(many_keys)} users/orgs/keys)")
            one_file = self.run_dir / f"{label}-key1.txt"
            one_file.write_text(one_key + "\n")
            many_file = self.run_dir / f"{label}-keys{len(many_keys)}.txt"
            many_file.write_text("\n".join(many_keys) + "\n")
            port = free_port()
            cmd = pin([str(FAREGATE_BIN), "serve", "--host", "127.0.0.1", "--port", str(port),
                       "--workers", str(workers)], self.server_core)
            server = start_proc(cmd, env, self.logs / f"{label}-server.log")
            srv = server
            if not wait_http(f"http://127.0.0.1:{port}/healthz", server, 60):
                self.skip(label, "`faregate serve` did not become healthy: " +
                          tail((self.logs / f"{label}-server.log").read_text()))
                return
            t = Target(label, f"http://127.0.0.1:{port}/v1/chat/completions",
                       pid=lambda: srv.pid, alive=lambda: srv.poll() is None)
            balance_before = _try(
                lambda: cli_json("balance", "bench-0@bench.example.com", "--json"))
            err = self.sanity(t, [one_key])
            if err:
                self.skip(label, f"sanity request failed: {err}")
                return
            self.targets[label] = {"status": "ran", "url": t.url, "db": db_kind,
                                   "many_keys": len(many_keys)}
            self.run_matrix(t, label, 1, one_file)
            self.run_ttfb(t, label, one_file)
            if many_keys:
                self.run_matrix(t, f"{label}-{len(many_keys)}k", len(many_keys), many_file)
            time.sleep(1.0)  # let in-flight settlements land
            stop_proc(server, grace=20)
            server = None
            balance_after = _try(lambda: cli_json("balance", "bench-0@bench.example.com", "--json"))
            balance_many = (_try(lambda: cli_json("balance", "bench-1@bench.example.com", "--json"))
                            if many_keys else None)
            verify = _run_capture([str(FAREGATE_BIN), "ledger", "verify"], env)
            self.checks[label] = {
                "balance_key1_before": balance_before,
                "balance_key1_after": balance_after,
                "balance_many_user1_after": balance_many,
                "ledger_verify": verify,
            }
            log(f"  ledger verify: {'PASS' if verify['ok'] else 'FAIL'} — {verify['output']}")
            log(f"  balance bench-0 before {json.dumps(balance_before)} "
                f"after {json.dumps(balance_after)}")
        finally:
            stop_proc(server)
            if created_db:
                drop_pg_database(*created_db)

    # ---- litellm -------------------------------------------------------------------------
    def bench_litellm(self) -> None:
        litellm_bin = LITELLM_VENV / "bin" / "litellm"
        if not litellm_bin.exists():
            self.skip("litellm", f"{litellm_bin} missing (install failed?)")
            return
        port = free_port()
        master = "sk-bench-master-key"
        cfg = self.run_dir / "litellm-config.yaml"
        cfg.write_text(
            "model_list:\n"
            f"  - model_name: {MODEL}\n"
            "    litellm_params:\n"
            f"      model: openai/{MODEL}\n"
            f"      api_base: {self.upstream_origin}/v1\n"
            "      api_key: sk-upstream-unused\n"
            "    model_info:\n"
            "      input_cost_per_token: 0.00000015\n"
            "      output_cost_per_token: 0.0000006\n"
            "litellm_settings:\n"
            "  drop_params: true\n"
            "  set_verbose: false\n"
            "  telemetry: false\n"
            "general_settings:\n"
            f"  master_key: {master}\n"
        )
        env = dict(os.environ)
        env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                    "LITELLM_TELEMETRY": "False"})
        env.pop("DATABASE_URL", None)
        cmd = pin([str(litellm_bin), "--config", str(cfg), "--host", "127.0.0.1",
                   "--port", str(port), "--num_workers", "1"], self.server_core)
        proc = start_proc(cmd, env, self.logs / "litellm.log")
        try:
            if not wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, 180):
                self.skip("litellm", "LiteLLM proxy did not start: " +
                          tail((self.logs / "litellm.log").read_text()))
                return
            t = Target("litellm", f"http://127.0.0.1:{port}/v1/chat/completions",
                       pid=lambda: proc.pid, alive=lambda: proc.poll() is None)
            err = self.sanity(t, [master])
            if err:
                self.skip("litellm", err)
                return
            keys_file = self.run_dir / "litellm-key.txt"
            keys_file.write_text(master + "\n")
            version = _run_capture([str(LITELLM_VENV / "bin" / "python"), "-c",
                                    "import importlib.metadata as m;"
                                    "print(m.version('litellm'))"], env)["output"]
            log(f"== litellm {version} (proxy, no DB, master key auth)")
            self.targets["litellm"] = {"status": "ran", "url": t.url, "version": version}
            self.run_matrix(t, "litellm", 1, keys_file)
            self.run_ttfb(t, "litellm", keys_file)
        finally:
            stop_proc(proc)


def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:
        return {"error": str(exc)}


def _run_capture(cmd: list[str], env: dict[str, str] | None) -> dict[str, Any]:
    try:
        res = subprocess.run(cmd, env=env, capture_output=True, timeout=300, cwd=str(ROOT))
    except (OSError, subprocess.SubprocessError) as exc:
        return {"ok": False, "rc": None, "output": str(exc)}
    out = (res.stdout + res.stderr).decode(errors="replace").strip()
    return {"ok": res.returncode == 0, "rc": res.returncode, "output": tail(out, 400)}


def make_pg_database(url: str) -> tuple[str, tuple[str, str] | None]:
    """Create a fresh database next to `url` for this run; fall back to `url` itself."""
    import psycopg  # installed with Faregate

    name = f"faregate_bench_{int(time.time())}_{os.getpid()}"
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        log(f"could not CREATE DATABASE ({exc}); using {url} as-is (it should be empty)")
        return url, None
    base, _, _rest = conninfo.rpartition("/")
    query = ""
    if "?" in _rest:
        query = "?" + _rest.split("?", 1)[1]
    return f"{base}/{name}{query}", (conninfo, name)


def drop_pg_database(conninfo: str, name: str) -> None:
    try:
        import psycopg

        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:
        log(f"could not drop database {name}: {exc}")


# ---------------------------------------------------------------------------------------------
# setup: wrk and the LiteLLM venv


def ensure_wrk() -> str:
    if shutil.which("wrk"):
        return shutil.which("wrk") or "wrk"
    if os.geteuid() != 0:
        raise SystemExit("wrk not found; install it (Debian: apt-get install -y wrk)")
    log("wrk not found; installing with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "install", "-y", "wrk"], ["apt-get", "update"],
                ["apt-get", "install", "-y", "wrk"]):
        subprocess.run(cmd, env=env, capture_output=True, timeout=600)
        if shutil.which("wrk"):
            break
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("could not install wrk; install it manually (apt-get install -y wrk)")
    return path


def ensure_litellm(timeout: float) -> str | None:
    """Create/reuse bench/.work/litellm-venv; return an error string or None."""
    py = LITELLM_VENV / "bin" / "python"
    check = [str(py), "-c", "import litellm.proxy.proxy_server"]
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    if py.exists() and subprocess.run(check, env=env, capture_output=True,
                                      timeout=300).returncode == 0:
        return None
    log(f"installing LiteLLM into {LITELLM_VENV} (one-time, takes a few minutes)")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    logf = WORK_DIR / "litellm-install.log"
    try:
        with open(logf, "wb") as out:
            subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True,
                           stdout=out, stderr=subprocess.STDOUT, timeout=120)
            subprocess.run([str(py), "-m", "pip", "install", "-q", "litellm[proxy]"], check=True,
                           stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"LiteLLM install failed ({exc}); see {logf}"
    if subprocess.run(check, env=env, capture_output=True, timeout=300).returncode != 0:
        return f"LiteLLM installed but `import litellm.proxy.proxy_server` fails; see {logf}"
    return None


# ---------------------------------------------------------------------------------------------
# report


def other_load(c: Cell) -> tuple[float, float]:
    """Busy fraction of core 0 / core 1 not explained by our processes (noisy neighbours)."""
    ours0 = 0.0 if c.target == "direct" else c.server_cpu_util
    other0 = max(0.0, c.core0_busy - ours0)
    other1 = max(0.0, c.core1_busy - c.loadgen_cpu_util - c.upstream_cpu_util)
    return other0, other1


def limited_by(c: Cell) -> str:
    """Rough bottleneck of a cell: the server's core, the client core, or neither."""
    if math.isnan(c.server_cpu_util):
        return "–"
    other0, _ = other_load(c)
    client = c.loadgen_cpu_util + c.upstream_cpu_util
    if c.target == "direct":
        return "client core" if client >= 0.85 else "latency"
    if c.server_cpu_util >= 0.85:
        return "server CPU"
    if c.server_cpu_util + other0 >= 0.85:
        return "server core (shared!)"
    if client >= 0.85:
        return "client core"
    return "latency"


def cell_map(cells: list[Cell]) -> dict[tuple[str, str, int], Cell]:
    return {(c.target, c.mode, c.concurrency): c for c in cells}


def ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return float("nan")
    return a / b


def compute_ratios(bench: Bench) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cm = cell_map(bench.cells)
    labels = sorted({c.target for c in bench.cells})
    fg_labels = [lb for lb in labels if lb.startswith("faregate")]
    out: dict[str, Any] = {"throughput_vs_bare": {}, "throughput_vs_litellm": {},
                           "cpu_efficiency_vs_bare": {},
                           "added_latency_c1_ms": {}, "ttfb_added_ms": {},
                           "loadgen_headroom": {}}
    for lb in labels:
        if lb == "direct":
            continue
        for mode in bench.args.modes:
            for c in bench.args.concurrency:
                cell = cm.get((lb, mode, c))
                if lb != "bare" and cell:
                    out["throughput_vs_bare"][f"{lb}/{mode}/c{c}"] = ratio(
                        cell.rps, getattr(cm.get(("bare", mode, c)), "rps", None))
                    out["cpu_efficiency_vs_bare"][f"{lb}/{mode}/c{c}"] = ratio(
                        getattr(cm.get(("bare", mode, c)), "server_cpu_ms_per_req", None),
                        cell.server_cpu_ms_per_req)
                if lb != "litellm" and cell:
                    out["throughput_vs_litellm"][f"{lb}/{mode}/c{c}"] = ratio(
                        cell.rps, getattr(cm.get(("litellm", mode, c)), "rps", None))
            d = cm.get(("direct", mode, 1))
            cell = cm.get((lb, mode, 1))
            if d and cell:
                out["added_latency_c1_ms"][f"{lb}/{mode}"] = {
                    "p50": cell.p50_ms - d.p50_ms, "p99": cell.p99_ms - d.p99_ms}
        if lb in bench.ttfb and "direct" in bench.ttfb and "error" not in bench.ttfb[lb]:
            dt_ = bench.ttfb["direct"]
            out["ttfb_added_ms"][lb] = {
                "p50": bench.ttfb[lb]["ttfb_p50_ms"] - dt_["ttfb_p50_ms"],
                "p99": bench.ttfb[lb]["ttfb_p99_ms"] - dt_["ttfb_p99_ms"]}
    proxies = [c for c in bench.cells if c.target != "direct" and not math.isnan(c.rps)]
    for mode in bench.args.modes:
        for c in bench.args.concurrency:
            d = cm.get(("direct", mode, c))
            best = max((x.rps for x in proxies if x.mode == mode and x.concurrency == c),
                       default=float("nan"))
            if d:
                out["loadgen_headroom"][f"{mode}/c{c}"] = ratio(d.rps, best)

    goals: list[dict[str, Any]] = []

    def contended(*keys: tuple[str, str, int]) -> str:
        bad = []
        for k in keys:
            cell = cm.get(k)
            # direct runs on core 1 only, so other load on core 0 does not disturb it
            if cell and cell.target != "direct" and other_load(cell)[0] > 0.2:
                bad.append(f"{k[0]} {k[1]} c={k[2]} (other load on core 0: "
                           f"{other_load(cell)[0]:.2f})")
        return ("noisy: " + "; ".join(bad)) if bad else ""

    def goal(name: str, value: float, limit: float, higher_is_better: bool,
             note: str = "") -> None:
        if math.isnan(value):
            ok: bool | None = None
        else:
            ok = value >= limit if higher_is_better else value <= limit
        goals.append({"goal": name, "value": value, "limit": limit,
                      "direction": ">=" if higher_is_better else "<=", "pass": ok,
                      "note": note})

    for lb in fg_labels:
        for mode in bench.args.modes:
            if 32 in bench.args.concurrency:
                goal(f"{lb} {mode} c=32 throughput / bare",
                     out["throughput_vs_bare"].get(f"{lb}/{mode}/c32", float("nan")), 0.5, True,
                     contended((lb, mode, 32), ("bare", mode, 32)))
                goal(f"({lb} {mode} c=32 CPU efficiency / bare — cross-check)",
                     out["cpu_efficiency_vs_bare"].get(f"{lb}/{mode}/c32", float("nan")), 0.5,
                     True)
        added = out["added_latency_c1_ms"].get(f"{lb}/json")
        if added:
            note = contended((lb, "json", 1), ("direct", "json", 1))
            goal(f"{lb} c=1 added p50 latency over direct (ms)", added["p50"], 1.5, False, note)
            goal(f"{lb} c=1 added p99 latency over direct (ms)", added["p99"], 5.0, False, note)
        if lb in out["ttfb_added_ms"]:
            goal(f"{lb} stream TTFB added p50 over direct (ms)",
                 out["ttfb_added_ms"][lb]["p50"], 1.5, False)
        if 32 in bench.args.concurrency:
            goal(f"{lb} json c=32 throughput / litellm",
                 out["throughput_vs_litellm"].get(f"{lb}/json/c32", float("nan")), 20.0, True,
                 contended((lb, "json", 32), ("litellm", "json", 32)))
    return out, goals


def render_markdown(bench: Bench, meta: dict[str, Any], ratios: dict[str, Any],
                    goals: list[dict[str, Any]]) -> str:
    a = bench.args
    lines = [f"# Faregate benchmark — {meta['date']} ({meta['desc']})", ""]
    lines += [
        f"- host: {meta['cpu']}, {meta['cores']} cores, {meta['kernel']}, Python "
        f"{meta['python']}, load avg at start {meta['loadavg_start']}",
        f"- pinning: {'server under test on core 0; upstream + load generator on core 1' if a.pin else 'off'}",  # noqa: E501
        f"- wrk: 1 thread, {a.duration}s per cell after {a.warmup}s warmup, timeout 10s; "
        f"TTFB probe: {a.ttfb_n} sequential streams",
        f"- versions: {json.dumps(meta['versions'])}",
        "",
        "## Targets",
        "",
    ]
    for name, info in bench.targets.items():
        extra = info.get("reason") or info.get("note") or ""
        lines.append(f"- **{name}**: {info['status']}{' — ' + extra if extra else ''}")
    if bench.idle_util:
        lines += ["", "Server CPU utilization when idle (1 s, before its cells): " + ", ".join(
            f"{lb} {fmt(v, 3)}" for lb, v in bench.idle_util.items())]
    cm = cell_map(bench.cells)
    order = list(dict.fromkeys(c.target for c in bench.cells))
    cpu_attr = "server_cpu_ms_per_req"
    lines += ["", "## Summary (req/s; c=1 latency from wrk)", "",
              "| target | mode | " + " | ".join(f"c={c} req/s" for c in a.concurrency)
              + " | c=1 p50 ms | c=1 p99 ms | CPU ms/req (c=32) |",
              "|---|---|" + "---:|" * (len(a.concurrency) + 3)]
    for lb in order:
        for mode in a.modes:
            row = [fmt(getattr(cm.get((lb, mode, c)), "rps", None), 0) for c in a.concurrency]
            c1 = cm.get((lb, mode, 1))
            lines.append(f"| {lb} | {mode} | " + " | ".join(row) +
                         f" | {fmt(getattr(c1, 'p50_ms', None))} "
                         f"| {fmt(getattr(c1, 'p99_ms', None))} "
                         f"| {fmt(getattr(cm.get((lb, mode, 32)), cpu_attr, None), 3)} |")
    lines += ["", "## Throughput and latency (wrk)", "",
              "| target | mode | c | keys | req/s | p50 ms | p99 ms | max ms | errors "
              "| server CPU ms/req | server util | wrk+upstream util | other load core0 "
              "| other load core1 | limited by |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in bench.cells:
        core1 = c.loadgen_cpu_util + c.upstream_cpu_util
        other0, other1 = other_load(c)
        err = str(c.errors) + (f" {c.error_detail}" if c.errors else "")
        if c.note:
            err += f" ({c.note[:80]})"
        lines.append(
            f"| {c.target} | {c.mode} | {c.concurrency} | {c.keys} | {fmt(c.rps, 0)} "
            f"| {fmt(c.p50_ms)} | {fmt(c.p99_ms)} | {fmt(c.max_ms, 1)} | {err} "
            f"| {fmt(c.server_cpu_ms_per_req, 3)} | {fmt(c.server_cpu_util, 2)} "
            f"| {fmt(core1, 2)} | {fmt(other0, 2)}{' ⚠' if other0 > 0.2 else ''} "
            f"| {fmt(other1, 2)} | {limited_by(c)} |")
    lines += ["", "## Streaming time to first byte (c=1, sequential, aiohttp probe)", "",
              "| target | n | TTFB p50 ms | TTFB p99 ms | headers p50 ms | end p50 ms "
              "| end p99 ms | errors | server CPU ms/req |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for lb, r in bench.ttfb.items():
        if "error" in r:
            lines.append(f"| {lb} | – | – | – | – | – | – | {r['error'][:60]} | – |")
            continue
        lines.append(
            f"| {lb} | {r['n']} | {fmt(r['ttfb_p50_ms'], 3)} | {fmt(r['ttfb_p99_ms'], 3)} "
            f"| {fmt(r['headers_p50_ms'], 3)} | {fmt(r['total_p50_ms'], 3)} "
            f"| {fmt(r['total_p99_ms'], 3)} | {r['errors'] + r['bad_streams']} "
            f"| {fmt(r['server_cpu_ms_per_req'], 3)} |")
    lines += ["", "## Ratios", ""]
    lines += ["**Throughput relative to bare** (1.0 = as fast as the bare proxy)", ""]
    lines += _ratio_table(ratios["throughput_vs_bare"], bench.args)
    lines += ["", "**CPU efficiency relative to bare** (bare server CPU ms/req ÷ target's; "
              "the throughput ratio to expect on an uncontended core)", ""]
    lines += _ratio_table(ratios["cpu_efficiency_vs_bare"], bench.args)
    lines += ["", "**Throughput relative to LiteLLM** (×)", ""]
    lines += _ratio_table(ratios["throughput_vs_litellm"], bench.args)
    lines += ["", "**Added latency over direct at c=1** (wrk p50/p99, ms)", "",
              "| target/mode | +p50 ms | +p99 ms |", "|---|---:|---:|"]
    for k, v in ratios["added_latency_c1_ms"].items():
        lines.append(f"| {k} | {fmt(v['p50'], 3)} | {fmt(v['p99'], 3)} |")
    lines += ["", "**Streaming TTFB added over direct** (ms)", "",
              "| target | +p50 ms | +p99 ms |", "|---|---:|---:|"]
    for k, v in ratios["ttfb_added_ms"].items():
        lines.append(f"| {k} | {fmt(v['p50'], 3)} | {fmt(v['p99'], 3)} |")
    lines += ["", "**Load-generator headroom**: direct req/s ÷ best proxy req/s per cell "
              "(should be well above 1; if ≈1 the load generator/upstream core is the limit)", "",
              "| cell | direct / best proxy |", "|---|---:|"]
    for k, v in ratios["loadgen_headroom"].items():
        lines.append(f"| {k} | {fmt(v, 2)} |")
    lines += ["", "## Goals", ""]
    if goals:
        lines += ["| goal | value | target | result | note |", "|---|---:|---:|---|---|"]
        for g in goals:
            res = {True: "PASS", False: "FAIL", None: "n/a"}[g["pass"]]
            lines.append(f"| {g['goal']} | {fmt(g['value'], 3)} | {g['direction']} "
                         f"{g['limit']} | {res} | {g['note']} |")
    else:
        lines.append("No Faregate cells ran, so no goal could be evaluated.")
    if bench.checks:
        lines += ["", "## Faregate checks", ""]
        for lb, chk in bench.checks.items():
            v = chk["ledger_verify"]
            lines.append(f"- **{lb}** ledger verify: {'PASS' if v['ok'] else 'FAIL'} "
                         f"(rc={v['rc']}) `{v['output'][:200]}`")
            lines.append(f"  - balance bench-0 before: `{json.dumps(chk['balance_key1_before'])}`")
            lines.append(f"  - balance bench-0 after: `{json.dumps(chk['balance_key1_after'])}`")
            if chk.get("balance_many_user1_after") is not None:
                lines.append("  - balance bench-1 (many-keys) after: "
                             f"`{json.dumps(chk['balance_many_user1_after'])}`")
    lines.append("")
    return "\n".join(lines)


def _ratio_table(data: dict[str, float], args: argparse.Namespace) -> list[str]:
    rows: dict[tuple[str, str], dict[int, float]] = {}
    for k, v in data.items():
        lb, mode, c = k.split("/")
        rows.setdefault((lb, mode), {})[int(c[1:])] = v
    if not rows:
        return ["(not available)"]
    head = "| target | mode | " + " | ".join(f"c={c}" for c in args.concurrency) + " |"
    sep = "|---|---|" + "---:|" * len(args.concurrency)
    out = [head, sep]
    for (lb, mode), vals in rows.items():
        out.append(f"| {lb} | {mode} | " +
                   " | ".join(fmt(vals.get(c, float("nan")), 2) for c in args.concurrency) + " |")
    return out


def collect_meta(args: argparse.Namespace, desc: str) -> dict[str, Any]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    import importlib.metadata as md

    for pkg in ("aiohttp", "uvicorn", "uvloop", "httptools", "orjson", "faregate"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[pkg] = md.version(pkg)
    try:
        wrk_v = subprocess.run(["wrk", "--version"], capture_output=True, timeout=10)
        versions["wrk"] = (wrk_v.stdout + wrk_v.stderr).decode().split()[1]
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                timeout=10, cwd=str(ROOT)).stdout.decode().strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "desc": desc,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "git_commit": commit,
        "versions": versions,
        "args": dict(vars(args)),
    }


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark direct / bare / Faregate / LiteLLM.")
    p.add_argument("--quick", action="store_true",
                   help="~2 minute smoke run: c=1,32; 2s cells; 8 keys; fewer TTFB probes")
    p.add_argument("--duration", type=int, help="whole seconds per measured cell (default 6)")
    p.add_argument("--warmup", type=int,
                   help="whole seconds of warmup before each cell, 0 = none (default 1)")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")],
                   help="comma list (default 1,32,256)")
    p.add_argument("--modes", type=lambda s: s.split(","), default=["json", "stream"],
                   help="comma list of json,stream (default both)")
    p.add_argument("--targets", type=lambda s: s.split(","),
                   default=["direct", "bare", "faregate", "litellm"],
                   help="comma list of direct,bare,faregate,litellm (default all)")
    p.add_argument("--skip-litellm", action="store_true", help="do not install/run LiteLLM")
    p.add_argument("--skip-faregate", action="store_true", help="do not run Faregate")
    p.add_argument("--skip-sqlite", action="store_true",
                   help="with --db postgres: run Faregate on PostgreSQL only")
    p.add_argument("--db", nargs="+", action="append", metavar=("KIND", "URL"),
                   help="'sqlite' (default) or 'postgres URL' (adds a faregate-pg target; a "
                        "fresh database is created next to URL when permitted). Repeatable.")
    p.add_argument("--many-keys", type=int, help="keys (each its own user/org) for the "
                   "rotating-keys Faregate run (default 64; 8 with --quick; 0 disables)")
    p.add_argument("--credits", type=float, default=1000, help="USD granted per bench user")
    p.add_argument("--ttfb-n", type=int, help="sequential streams for the TTFB probe "
                   "(default 400; 100 with --quick)")
    p.add_argument("--faregate-log-level", default="warning",
                   help="FAREGATE_LOG_LEVEL for the server (default warning)")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="disable taskset pinning")
    p.add_argument("--workers", default="1",
                   help="comma list of `faregate serve --workers` counts; each count other than "
                        "1 adds targets suffixed -wN (all pinned to the server core: compare "
                        "server CPU ms/request)")
    p.add_argument("--rate-limits", action="store_true",
                   help="put the bench organizations on a usage tier with (unreachable) RPM/TPM "
                        "limits, so every call goes through the rate limiter (org and key "
                        "buckets; in Redis when FAREGATE_REDIS_URL is set, else in memory)")
    p.add_argument("--desc", help="short description for the results file name")
    p.add_argument("--litellm-install-timeout", type=float, default=900)
    args = p.parse_args(argv)
    q = args.quick
    args.duration = max(1, args.duration if args.duration is not None else (2 if q else 6))
    args.warmup = max(0, args.warmup if args.warmup is not None else 1)
    args.concurrency = args.concurrency or ([1, 32] if q else [1, 32, 256])
    args.many_keys = args.many_keys if args.many_keys is not None else (8 if q else 64)
    args.ttfb_n = args.ttfb_n or (100 if q else 400)
    dbs: list[tuple[str, str | None]] = []
    for spec in args.db or [["sqlite"]]:
        kind = spec[0].lower()
        if kind == "sqlite":
            dbs.append(("sqlite", None))
        elif kind in ("postgres", "postgresql", "pg"):
            if len(spec) != 2:
                p.error("--db postgres needs a URL: --db postgres postgresql://user:pw@host/db")
            dbs.append(("postgres", spec[1]))
        else:
            p.error(f"unknown --db kind {kind!r}")
    if args.db and not args.skip_sqlite and not any(k == "sqlite" for k, _ in dbs):
        dbs.insert(0, ("sqlite", None))  # PostgreSQL is in addition to the SQLite default
    args.db = dbs
    for m in args.modes:
        if m not in ("json", "stream"):
            p.error(f"unknown mode {m!r}")
    if args.skip_litellm and "litellm" in args.targets:
        args.targets.remove("litellm")
    if args.skip_faregate and "faregate" in args.targets:
        args.targets.remove("faregate")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    t_start = time.monotonic()
    ensure_wrk()
    if args.pin and (os.cpu_count() or 1) < 2:
        log("fewer than 2 cores: pinning disabled")
        args.pin = False
    if args.pin and not shutil.which("taskset"):
        log("taskset not found: pinning disabled")
        args.pin = False
    litellm_err = None
    if "litellm" in args.targets:
        litellm_err = ensure_litellm(args.litellm_install_timeout)
    desc = args.desc or ("quick" if args.quick else "full")
    meta = collect_meta(args, desc)
    bench = Bench(args)
    log(f"run dir {bench.run_dir}")
    try:
        bench.start_upstream()
        if "direct" in args.targets:
            bench.bench_direct()
        if "bare" in args.targets:
            bench.bench_bare()
        if "faregate" in args.targets:
            for kind, url in args.db:
                for n in (int(w) for w in args.workers.split(",")):
                    name = "faregate" if kind == "sqlite" else "faregate-pg"
                    bench.bench_faregate(name if n == 1 else f"{name}-w{n}", kind, url, n)
        if "litellm" in args.targets:
            if litellm_err:
                bench.skip("litellm", litellm_err)
            else:
                bench.bench_litellm()
        for name in ("faregate", "litellm"):
            if name not in args.targets and name not in bench.targets:
                bench.targets[name] = {"status": "skipped", "reason": "disabled by options"}
    finally:
        stop_proc(bench.upstream)
    ratios, goals = compute_ratios(bench)
    meta["elapsed_s"] = round(time.monotonic() - t_start, 1)
    md = render_markdown(bench, meta, ratios, goals)
    md += f"\nTotal bench time: {meta['elapsed_s']} s. Logs: `{bench.logs}`\n"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    ran = [n for n, t in bench.targets.items() if t["status"] == "ran"]
    stem = result_stem(f"{desc}-" + "-".join(ran or ["none"]))
    md_path = RESULTS_DIR / f"{stem}.md"
    json_path = RESULTS_DIR / f"{stem}.json"
    md_path.write_text(md)
    doc = {"meta": meta, "targets": bench.targets,
           "cells": [vars(c) for c in bench.cells], "ttfb": bench.ttfb,
           "ratios": ratios, "goals": goals, "faregate_checks": bench.checks,
           "idle_server_cpu_util": bench.idle_util}
    json_path.write_text(_json_dump(doc))
    print(md)
    print(f"wrote {md_path.relative_to(ROOT)} and {json_path.relative_to(ROOT)}")
    return 0 if ran else 1


def _json_dump(doc: Any) -> str:
    def clean(x: Any) -> Any:
        if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(doc), indent=2, default=str) + "\n"


if __name__ == "__main__":
    sys.exit(main())
