"""Real processes for end-to-end tests: a Faregate server (or several) on a real database, and
the standalone development model as an upstream. Setup goes through the service functions
against the same database the servers use."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from faregate.api_keys.service import KeySpec, issue_key
from faregate.catalog.service import ModelPrice, add_upstream, set_limits, set_price
from faregate.db.engine import create_engine
from faregate.db.migrate import upgrade
from faregate.identity.users import User, create_user
from faregate.kit.crypto import Cipher
from faregate.kit.secretfile import load_or_create_secret
from faregate.ledger.accounts import balance, open_leases_total, org_account_id
from faregate.ledger.transfers import grant
from faregate.ledger.verify import verify
from faregate.usage.rollup import rollup_problems


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 30.0, proc: subprocess.Popen[bytes] | None = None
              ) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    kind: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


@dataclass
class Deployment:
    """A data dir and a database shared by every process of one test."""

    data_dir: Path
    database_url: str
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        upgrade(self.database_url)
        self.engine = create_engine(self.database_url, pool_size=2)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAREGATE_")}
        env.update(FAREGATE_DATA_DIR=str(self.data_dir), FAREGATE_DATABASE_URL=self.database_url,
                   FAREGATE_LOG_LEVEL="warning")
        return env

    @property
    def pepper(self) -> bytes:
        return load_or_create_secret(self.data_dir / "secrets" / "key_pepper")

    @property
    def cipher(self) -> Cipher:
        return Cipher(load_or_create_secret(self.data_dir / "secrets" / "encryption_key"))

    def start_server(self, **env: str) -> Proc:
        port = free_port()
        log = self.data_dir / f"server-{port}.log"
        full_env = {**self.env, "FAREGATE_PORT": str(port), **env}
        proc = subprocess.Popen([sys.executable, "-m", "faregate.server"], env=full_env,
                                stdout=log.open("wb"), stderr=subprocess.STDOUT)
        server = Proc(proc, port, log, "server")
        self.procs.append(server)
        wait_http(f"{server.base_url}/healthz", proc=proc)
        return server

    def start_devmodel(self, token_latency_ms: float = 0.0) -> Proc:
        port = free_port()
        log = self.data_dir / f"devmodel-{port}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "faregate.devmodel", "--port", str(port),
             "--token-latency-ms", str(token_latency_ms)],
            stdout=log.open("wb"), stderr=subprocess.STDOUT)
        upstream = Proc(proc, port, log, "upstream")
        self.procs.append(upstream)
        wait_http(f"{upstream.base_url}/v1/models", proc=proc)
        return upstream

    def add_upstream(self, name: str, base_url: str, models: dict[str, str],
                     price: ModelPrice, *, default_max_tokens: int | None = None,
                     kind: str = "chat") -> None:
        with self.engine.begin() as conn:
            add_upstream(conn, name=name, base_url=base_url, model_map=models, api_key=None,
                         api_key_env=None, cipher=self.cipher, kind=kind)
            for model in models:
                set_price(conn, model, price)
                if default_max_tokens is not None:
                    set_limits(conn, model, default_max_tokens=default_max_tokens,
                               max_output_tokens=max(default_max_tokens, 4096))

    def new_user(self, email: str, grant_nano: int = 0) -> User:
        with self.engine.begin() as conn:
            user = create_user(conn, email)
            if grant_nano:
                grant(conn, user.organization_id, grant_nano, actor="test", reason="test")
        return user

    def new_key(self, user: User, spec: KeySpec | None = None) -> tuple[str, str]:
        with self.engine.begin() as conn:
            issued = issue_key(conn, organization_id=user.organization_id, user_id=user.id,
                               name="test", pepper=self.pepper, spec=spec)
        return issued.id, issued.key

    def balance(self, user: User) -> tuple[int, int, int]:
        """(balance, held, open leases) in nano-USD."""
        with self.engine.begin() as conn:
            acct = org_account_id(conn, user.organization_id)
            b = balance(conn, acct)
            return b.balance_nano, b.held_nano, open_leases_total(conn, acct)

    def balance_of_org(self, organization_id: str) -> tuple[int, int]:
        """(balance, held) of an organization, in nano-USD."""
        with self.engine.begin() as conn:
            b = balance(conn, org_account_id(conn, organization_id))
            return b.balance_nano, b.held_nano

    def verify(self) -> list[str]:
        with self.engine.begin() as conn:
            return verify(conn) + rollup_problems(conn)

    def query(self, sql: str, **params: object) -> list[sa.Row[tuple[object, ...]]]:
        with self.engine.begin() as conn:
            return list(conn.execute(sa.text(sql), params).all())

    def stop_all_servers(self) -> None:
        """Stop the Faregate servers cleanly (SIGTERM), leaving upstreams running."""
        for proc in [p for p in self.procs if p.kind == "server"]:
            # uvicorn re-raises SIGTERM after its graceful shutdown completes
            assert proc.stop() in (0, -signal.SIGTERM), proc.log.read_text()[-3000:]
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        self.engine.dispose()


@contextlib.contextmanager
def deployment(data_dir: Path, database_url: str | None = None) -> Iterator[Deployment]:
    data_dir.mkdir(parents=True, exist_ok=True)
    dep = Deployment(data_dir, database_url or f"sqlite:///{data_dir / 'faregate.db'}")
    try:
        yield dep
    finally:
        dep.stop_all()
