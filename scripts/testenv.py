#!/usr/bin/env python3
"""Run a command with PostgreSQL and Redis available to the tests (`make test`).

    .venv/bin/python scripts/testenv.py -- .venv/bin/pytest [ARGS...]

Exports, for the command:
  FAREGATE_TEST_PG_ADMIN_URL  postgresql:// URL of a server where the tests may CREATE/DROP
                              their own databases (tests/services.py).
  FAREGATE_TEST_REDIS_URL     redis:// URL of a Redis database the tests may FLUSHDB.

Where each comes from, first match wins:
  PostgreSQL: $FAREGATE_TEST_PG_ADMIN_URL or $FAREGATE_TEST_DATABASE_URL if set; else a server on
              127.0.0.1:5432 with trust login as `postgres`; else a private throw-away cluster
              in .test-services/pg on a free port (PostgreSQL installed with apt when root).
  Redis:      $FAREGATE_TEST_REDIS_URL if set; else 127.0.0.1:6379 (db 15) if it answers PING;
              else a private redis-server on a free port (installed with apt when root).
FAREGATE_TEST_NO_SYSTEM_SERVICES=1 skips the probing of 5432/6379 (forces the private servers).

A service that cannot be had is reported loudly and its variable left unset: the fixtures then
skip those tests (or fail them under CI=true). Whatever this script started is stopped when the
command ends, also on failure, Ctrl-C or SIGTERM. The exit code is the command's.
Standard library only, plus psycopg when available (to probe the system PostgreSQL).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".test-services"
RUN_DIR = STATE / f"run-{os.getpid()}"  # per run: concurrent runs in one checkout don't collide
IS_ROOT = os.geteuid() == 0
START_TIMEOUT_S = 60.0


def log(msg: str) -> None:
    print(f"testenv: {msg}", file=sys.stderr, flush=True)


def warn_loudly(msg: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n!!! testenv: {msg}\n{bar}\n", file=sys.stderr, flush=True)


def truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
        return True
    return False


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if this script dies (even by SIGKILL). Linux only."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def apt_install(package: str) -> bool:
    if not IS_ROOT or shutil.which("apt-get") is None:
        return False
    log(f"installing {package} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env,
                       stdout=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
                       check=True, env=env, stdout=sys.stderr)
    except (OSError, subprocess.CalledProcessError) as e:
        log(f"apt-get install {package} failed: {e}")
        return False
    return True


# --- PostgreSQL ---------------------------------------------------------------------------------

def pg_trust_url(port: int, dbname: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{dbname}"


def pg_login_works(url: str) -> bool:
    try:
        import psycopg
    except ImportError:
        log("psycopg is not importable: cannot probe the system PostgreSQL")
        return False
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def newest_pg_bindir() -> Path | None:
    def version(p: str) -> tuple[int, ...]:
        m = re.search(r"/postgresql/([\d.]+)/bin/", p)
        return tuple(int(x) for x in m.group(1).split(".") if x) if m else ()

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    return Path(found[-1]).parent if found else None


def chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


class PrivatePostgres:
    """A throw-away cluster: initdb, start on a free port, stop and delete afterwards."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.base: Path | None = None
        self.port = 0
        self.runas: list[str] = []

    def _run(self, *args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        cmd = [*self.runas, str(self.bindir / args[0]), *args[1:]]
        return subprocess.run(cmd, check=check, text=True, **kw)

    def _prepare_base(self) -> Path:
        """A fresh directory the server's user owns (postgres refuses to run as root)."""
        base = RUN_DIR / "pg"
        base.mkdir(parents=True)
        if not IS_ROOT:
            return base
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            log("creating the system user `postgres` (postgres refuses to run as root)")
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                            "--shell", "/usr/sbin/nologin", "postgres"], check=True)
            pw = pwd.getpwnam("postgres")
        self.runas = ["runuser", "-u", "postgres", "--"]
        chown_tree(base, pw.pw_uid, pw.pw_gid)
        probe = subprocess.run([*self.runas, "test", "-w", str(base)], check=False)
        if probe.returncode != 0:  # the checkout is not reachable for `postgres` (e.g. /root)
            shutil.rmtree(base, ignore_errors=True)
            base = Path(tempfile.mkdtemp(prefix="faregate-testpg-"))
            chown_tree(base, pw.pw_uid, pw.pw_gid)
            log(f"`postgres` cannot write under {STATE}; using {base}")
        return base

    def start(self) -> str:
        self.base = base = self._prepare_base()
        data, sockdir, logfile = base / "data", base / "sock", base / "postgres.log"
        log(f"initdb {data} ({self.bindir})")
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync", stdout=subprocess.DEVNULL)
        sockdir.mkdir()
        if IS_ROOT:
            pw = pwd.getpwnam("postgres")
            os.chown(sockdir, pw.pw_uid, pw.pw_gid)
        # unix socket paths are limited to ~107 bytes; disable the socket rather than fail
        socket_dirs = str(sockdir) if len(str(sockdir)) < 90 else ""
        for _attempt in range(3):  # the free port can be taken between probe and bind
            self.port = free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                    f"-c unix_socket_directories='{socket_dirs}' "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                    "-c max_connections=200")
            result = self._run("pg_ctl", "start", "-D", str(data), "-l", str(logfile),
                               "-o", opts, "-w", "-t", str(int(START_TIMEOUT_S)),
                               check=False, stdout=subprocess.DEVNULL)
            url = pg_trust_url(self.port, "postgres")
            if result.returncode == 0 and self._wait_ready(url):
                log(f"private PostgreSQL on 127.0.0.1:{self.port} (log: {logfile})")
                return url
            self.stop(delete=False)
        tail = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start; end of {logfile}:\n{tail}")

    def _wait_ready(self, url: str) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if port_open(self.port) and (pg_login_works(url) or not _has_psycopg()):
                return True
            time.sleep(0.2)
        return False

    def stop(self, delete: bool = True) -> None:
        if self.base is None:
            return
        data = self.base / "data"
        if (data / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", str(data), "-m", "fast", "-w", "-t", "60",
                      check=False, stdout=subprocess.DEVNULL)
            log("stopped the private PostgreSQL")
        if delete:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None


def _has_psycopg() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


def provide_postgres(cleanups: list[Callable[[], None]]) -> str | None:
    for var in ("FAREGATE_TEST_PG_ADMIN_URL", "FAREGATE_TEST_DATABASE_URL"):
        if os.environ.get(var):
            log(f"PostgreSQL: using ${var}")
            return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", os.environ[var])
    if truthy("FAREGATE_TEST_NO_SYSTEM_SERVICES"):
        log("FAREGATE_TEST_NO_SYSTEM_SERVICES set: not probing 127.0.0.1:5432")
    elif port_open(5432):
        for db in ("postgres", "test"):
            url = pg_trust_url(5432, db)
            if pg_login_works(url):
                log(f"PostgreSQL: using the server on 127.0.0.1:5432 ({url})")
                return url
        log("something listens on 127.0.0.1:5432 but a trust login as postgres fails")
    bindir = newest_pg_bindir()
    if bindir is None and apt_install("postgresql"):
        bindir = newest_pg_bindir()
    if bindir is None:
        warn_loudly("PostgreSQL NOT AVAILABLE: no /usr/lib/postgresql/*/bin/initdb "
                    "(install postgresql, or set FAREGATE_TEST_PG_ADMIN_URL)")
        return None
    pg = PrivatePostgres(bindir)
    cleanups.append(pg.stop)
    try:
        return pg.start()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
        warn_loudly(f"PostgreSQL NOT AVAILABLE: starting a private cluster failed: {e}")
        return None


# --- Redis --------------------------------------------------------------------------------------

def redis_pings(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def provide_redis(cleanups: list[Callable[[], None]]) -> str | None:
    if os.environ.get("FAREGATE_TEST_REDIS_URL"):
        log("Redis: using $FAREGATE_TEST_REDIS_URL")
        return os.environ["FAREGATE_TEST_REDIS_URL"]
    if truthy("FAREGATE_TEST_NO_SYSTEM_SERVICES"):
        log("FAREGATE_TEST_NO_SYSTEM_SERVICES set: not probing 127.0.0.1:6379")
    elif redis_pings(6379):
        log("Redis: using the server on 127.0.0.1:6379, db 15")
        return "redis://127.0.0.1:6379/15"
    server = shutil.which("redis-server") or (
        shutil.which("redis-server") if apt_install("redis-server") else None)
    if server is None:
        warn_loudly("Redis NOT AVAILABLE: no redis-server (install redis-server, "
                    "or set FAREGATE_TEST_REDIS_URL)")
        return None
    workdir = RUN_DIR / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    for _attempt in range(3):
        port = free_port()
        logfile = open(workdir / "redis.log", "ab")  # noqa: SIM115 - closed on stop
        proc = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir)],
            stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C goes to the tests, we stop Redis after them
            preexec_fn=_die_with_parent)

        def stop(proc: subprocess.Popen[bytes] = proc, logfile: object = logfile) -> None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                log("stopped the private Redis")
            logfile.close()  # type: ignore[attr-defined]
            shutil.rmtree(workdir, ignore_errors=True)

        cleanups.append(stop)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if redis_pings(port):
                log(f"private Redis on 127.0.0.1:{port}")
                return f"redis://127.0.0.1:{port}/0"
            time.sleep(0.1)
        stop()
        cleanups.remove(stop)
    warn_loudly(f"Redis NOT AVAILABLE: private redis-server did not start (see {workdir})")
    return None


# --- main ---------------------------------------------------------------------------------------

def run_alive(pid: str) -> bool:
    """Is the testenv.py with this pid still running? (zombies and reused pids are not)"""
    try:
        return b"testenv" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def remove_leftovers() -> None:
    """Clean up after earlier runs that were killed: stop their clusters, delete their files."""
    for run_dir in STATE.glob("run-*"):
        if run_alive(run_dir.name.removeprefix("run-")):
            continue
        data = run_dir / "pg" / "data"
        bindir = newest_pg_bindir()
        if (data / "postmaster.pid").exists() and bindir is not None:
            log(f"stopping a PostgreSQL left over by an earlier run ({data})")
            runas = ["runuser", "-u", "postgres", "--"] if IS_ROOT else []
            subprocess.run([*runas, str(bindir / "pg_ctl"), "stop", "-D", str(data),
                            "-m", "immediate", "-w"], check=False, capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def forwarded_signals(child: subprocess.Popen[bytes]) -> Iterator[None]:
    """SIGTERM/SIGHUP go on to the command; SIGINT from a terminal already reached it."""
    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    old[signal.SIGINT] = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    STATE.mkdir(exist_ok=True)
    remove_leftovers()
    cleanups: list[Callable[[], None]] = [lambda: shutil.rmtree(RUN_DIR, ignore_errors=True)]
    # Stop what we started also when SIGTERM/SIGHUP arrive before the command is running.
    def early_exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, early_exit)
    try:
        env = dict(os.environ)  # TIKTOKEN_CACHE_DIR etc. pass through untouched
        for var, provide in (("FAREGATE_TEST_PG_ADMIN_URL", provide_postgres),
                             ("FAREGATE_TEST_REDIS_URL", provide_redis)):
            url = provide(cleanups)
            if url:
                env[var] = url
            else:
                env.pop(var, None)
        log(f"running: {' '.join(argv)}")
        child = subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent)
        with forwarded_signals(child):
            while True:
                try:
                    rc = child.wait()
                except KeyboardInterrupt:
                    continue
                return rc if rc >= 0 else 128 - rc  # killed by a signal: shell convention
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as e:
                log(f"cleanup failed: {e}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
