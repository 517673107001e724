"""Fixtures for the fault tests: a deployment on the shared PostgreSQL server (a fresh database
per test), and private servers a test may stop, kill and restart: a throw-away PostgreSQL
cluster and a redis-server, each on a free port of its own (never the shared ones, which other
tests use). Missing binaries skip the test, or fail it under CI=true (tests/services.py)."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from scripts import testenv
from scripts.testenv import PrivatePostgres, newest_pg_bindir

from tests import services
from tests.harness import Deployment, deployment, free_port


@pytest.fixture
def pg_dep(tmp_path: Path, pg_database: str) -> Iterator[Deployment]:
    with deployment(tmp_path / "fg", pg_database) as dep:
        yield dep


class RestartablePostgres:
    """A private cluster (scripts/testenv.py's) that can be stopped and started on its port."""

    def __init__(self, pg: PrivatePostgres) -> None:
        self.pg = pg
        self.port = pg.port

    @property
    def _data(self) -> Path:
        assert self.pg.base is not None
        return self.pg.base / "data"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown: every connection is cut, as in a restart or a failover."""
        self.pg._run("pg_ctl", "stop", "-D", str(self._data), "-m", "fast", "-w", "-t", "30",
                     stdout=subprocess.DEVNULL)

    def start(self) -> None:
        assert self.pg.base is not None
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
                "-c fsync=off -c synchronous_commit=off -c max_connections=200")
        self.pg._run("pg_ctl", "start", "-D", str(self._data), "-l",
                     str(self.pg.base / "postgres.log"), "-o", opts, "-w", "-t", "30",
                     stdout=subprocess.DEVNULL)


@pytest.fixture
def private_pg(monkeypatch: pytest.MonkeyPatch) -> Iterator[RestartablePostgres]:
    # Not under .test-services/run-*: another testenv.py starting meanwhile would take a
    # cluster there for a leftover of a dead run (it only knows its own pids) and remove it.
    monkeypatch.setattr(testenv, "RUN_DIR", testenv.STATE / f"faults-{secrets.token_hex(4)}")
    bindir = newest_pg_bindir()
    if bindir is None:
        services.unavailable(services.PG_MISSING, "no /usr/lib/postgresql/*/bin/initdb")
    assert bindir is not None
    pg = PrivatePostgres(bindir)
    try:
        pg.start()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        services.unavailable(services.PG_MISSING, f"a private cluster did not start: {exc}")
    try:
        yield RestartablePostgres(pg)
    finally:
        pg.stop()
        shutil.rmtree(testenv.RUN_DIR, ignore_errors=True)


class PrivateRedis:
    """A redis-server on a free port that the test may kill and start again on that port."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 30
        while not testenv.redis_pings(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.workdir / "redis.log").read_text()[-2000:])
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def keys(self, pattern: str) -> int:
        """How many keys match (redis-cli's KEYS over a plain socket)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(f"KEYS {pattern}\r\n".encode())
            head = s.recv(64).split(b"\r\n", 1)[0]
        assert head.startswith(b"*"), head
        return int(head[1:])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        services.unavailable(services.REDIS_MISSING, "no redis-server binary")
    assert binary is not None
    workdir = tmp_path / "redis"
    workdir.mkdir()
    redis = PrivateRedis(binary, workdir)
    try:
        redis.start()
    except (OSError, RuntimeError) as exc:
        services.unavailable(services.REDIS_MISSING, f"a private redis-server did not start: "
                                                     f"{exc}")
    try:
        yield redis
    finally:
        if redis.proc is not None and redis.proc.poll() is None:
            redis.kill()
