"""Fixtures for the integration tests against a real llama.cpp server (`make test-llama`).

The llama server is llama-cpp-python's OpenAI-compatible server with the tiny random-weights
model from `scripts/make_tiny_gguf.py`. `scripts/test-llama.sh` builds both and sets
FAREGATE_LLAMA_PYTHON (the python of the venv that has llama-cpp-python[server]) and
FAREGATE_LLAMA_MODEL (the .gguf file). Without them these tests are skipped, except under
CI=true, where they fail: CI must never pass by skipping them.

The Faregate-through tests also need the `faregate` command (from the venv running pytest).
When it is not usable yet they are skipped with the reason, or fail under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

LLAMA_ALIAS = "tiny"  # the model name the llama server answers to
FAREGATE_MODEL = "tiny-llama"  # the model name clients use through Faregate
# Prices given to `faregate models set-price`, USD per 1M tokens: 1 USD/1M = 1,000 nano-USD/token.
INPUT_NANO_USD_PER_TOKEN = 1_000
OUTPUT_NANO_USD_PER_TOKEN = 2_000
GRANT_USD = "1"
USER_EMAIL = "a@example.com"

LLAMA_START_TIMEOUT_S = 60.0
FAREGATE_START_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0

# Subcommands the Faregate-through tests rely on.
REQUIRED_CLI_COMMANDS = (
    "serve",
    "db",
    "upstreams",
    "models",
    "users",
    "credits",
    "keys",
    "balance",
    "ledger",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faregate: goes through a real `faregate serve` (needs the faregate CLI)"
    )


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip outside CI; fail under CI=true, where a skip would hide a broken setup."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: not skipping)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, token: str | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def log_tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_for_http(
    proc: subprocess.Popen[bytes], url: str, timeout_s: float, what: str, log: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    last_error = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {proc.returncode} before answering {url}\n"
                f"--- last lines of {log} ---\n{log_tail(log)}"
            )
        try:
            status, _ = http_get(url, timeout=2.0)
            if status == 200:
                return
            last_error = f"HTTP {status}"
        except OSError as e:
            last_error = repr(e)
        time.sleep(0.2)
    stop_process(proc)
    raise RuntimeError(
        f"{what} did not answer {url} within {timeout_s:.0f}s (last: {last_error})\n"
        f"--- last lines of {log} ---\n{log_tail(log)}"
    )


# --------------------------------------------------------------------------- llama server


@dataclass(frozen=True)
class LlamaServer:
    base_url: str  # .../v1
    port: int
    model: str  # the alias to request
    log: Path


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    python = os.environ.get("FAREGATE_LLAMA_PYTHON", "")
    model = os.environ.get("FAREGATE_LLAMA_MODEL", "")
    if not python or not model:
        skip_or_fail(
            "FAREGATE_LLAMA_PYTHON / FAREGATE_LLAMA_MODEL are not set: "
            "run these tests with `make test-llama` (scripts/test-llama.sh)"
        )
    if not Path(python).exists():
        skip_or_fail(f"FAREGATE_LLAMA_PYTHON={python} does not exist (run `make test-llama`)")
    if not Path(model).is_file():
        skip_or_fail(f"FAREGATE_LLAMA_MODEL={model} is not a file (run `make test-llama`)")

    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "llama-server.log"
    cmd = [
        python, "-m", "llama_cpp.server",
        "--model", model,
        "--model_alias", LLAMA_ALIAS,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "512",
        "--n_threads", "1",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_http(
            proc,
            f"http://127.0.0.1:{port}/v1/models",
            LLAMA_START_TIMEOUT_S,
            "llama_cpp.server",
            log,
        )
        yield LlamaServer(f"http://127.0.0.1:{port}/v1", port, LLAMA_ALIAS, log)
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def llama_client(llama_server: LlamaServer) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=llama_server.base_url, api_key="unused", max_retries=0, timeout=60)


# --------------------------------------------------------------------------- faregate


def faregate_bin() -> str | None:
    override = os.environ.get("FAREGATE_BIN")
    if override:
        return override
    beside = Path(sys.executable).parent / "faregate"  # the venv running pytest
    if beside.exists():
        return str(beside)
    return shutil.which("faregate")


@dataclass
class Faregate:
    """A configured Faregate data dir (upstream, price, user, credit, key) and its CLI."""

    bin: str
    data_dir: Path
    env: dict[str, str] = field(repr=False)
    model: str = FAREGATE_MODEL
    input_nano_usd_per_token: int = INPUT_NANO_USD_PER_TOKEN
    output_nano_usd_per_token: int = OUTPUT_NANO_USD_PER_TOKEN
    grant_usd: str = GRANT_USD
    key: str = field(default="", repr=False)
    user: dict[str, Any] = field(default_factory=dict)
    base_url: str = ""  # .../v1, set once `faregate serve` is up
    log: Path | None = None
    upstream_log: Path | None = None  # the llama server's log, for failure messages

    def logs_tail(self) -> str:
        parts = []
        for name, path in (("faregate serve", self.log), ("llama server", self.upstream_log)):
            if path is not None:
                parts.append(f"--- last lines of the {name} log ({path}) ---\n{log_tail(path, 15)}")
        return "\n".join(parts)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self.bin, *args]
        res = subprocess.run(
            cmd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"`faregate {' '.join(args)}` exited {res.returncode}\n"
                f"--- stdout ---\n{res.stdout}\n--- stderr ---\n{res.stderr}"
            )
        return res

    def cli_json(self, *args: str) -> Any:
        res = self.cli(*args)
        try:
            return json.loads(res.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(
                f"`faregate {' '.join(args)}` did not print JSON ({e})\n"
                f"--- stdout ---\n{res.stdout}\n--- stderr ---\n{res.stderr}"
            ) from e

    def cost_nano_usd(self, prompt_tokens: int, completion_tokens: int) -> int:
        """What the configured prices make of this usage."""
        return (
            prompt_tokens * self.input_nano_usd_per_token
            + completion_tokens * self.output_nano_usd_per_token
        )

    def balance(self) -> dict[str, str]:
        data = self.cli_json("balance", USER_EMAIL, "--json")
        assert isinstance(data, dict), data
        return data

    def request_record(self, request_id: str) -> dict[str, Any] | None:
        """GET /v1/faregate/requests/{id} with the test key; None while it is a 404."""
        status, body = http_get(f"{self.base_url}/faregate/requests/{request_id}", token=self.key)
        if status == 404:
            return None
        assert status == 200, f"GET /v1/faregate/requests/{request_id}: {status} {body!r}"
        data = json.loads(body)
        assert isinstance(data, dict), data
        return data


def cli_problem(bin_path: str | None) -> str | None:
    """Why the faregate CLI cannot run these tests yet, or None when it looks ready."""
    if bin_path is None:
        return "no `faregate` executable next to the test interpreter nor on PATH"
    try:
        res = subprocess.run(
            [bin_path, "--help"], capture_output=True, text=True, timeout=CLI_TIMEOUT_S
        )
    except OSError as e:
        return f"cannot run {bin_path}: {e}"
    if res.returncode != 0:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-5:])
        return f"`faregate --help` exited {res.returncode}:\n{tail}"
    missing = [c for c in REQUIRED_CLI_COMMANDS if c not in res.stdout]
    if missing:
        return f"`faregate --help` does not list the subcommands {missing}"
    return None


@pytest.fixture(scope="session")
def faregate_cli() -> str:
    """The faregate executable; skips (fails under CI=true) while the CLI is not ready."""
    bin_path = faregate_bin()
    problem = cli_problem(bin_path)
    if problem is not None:
        skip_or_fail(f"the faregate CLI is not ready, Faregate-through tests not run: {problem}")
    assert bin_path is not None
    return bin_path


@pytest.fixture(scope="session")
def faregate_setup(
    tmp_path_factory: pytest.TempPathFactory, llama_server: LlamaServer, faregate_cli: str
) -> Faregate:
    """A fresh SQLite-backed Faregate: upstream -> llama, a price, a user with 1 USD, a key."""
    bin_path = faregate_cli

    data_dir = tmp_path_factory.mktemp("faregate")
    env = dict(os.environ)
    env["FAREGATE_DATA_DIR"] = str(data_dir)
    env["FAREGATE_DATABASE_URL"] = f"sqlite:///{data_dir}/fg.db"
    fg = Faregate(bin=bin_path, data_dir=data_dir, env=env, upstream_log=llama_server.log)

    fg.cli("db", "upgrade")
    fg.cli_json(
        "upstreams", "add", "llama",
        "--base-url", llama_server.base_url,
        "--models", f"{FAREGATE_MODEL}={llama_server.model}",
        "--json",
    )  # fmt: skip
    fg.cli("models", "set-price", FAREGATE_MODEL, "--input", "1", "--output", "2")
    fg.user = fg.cli_json("users", "create", USER_EMAIL, "--json")
    assert fg.user.get("email") == USER_EMAIL, fg.user
    fg.cli_json("credits", "grant", USER_EMAIL, GRANT_USD, "--reason", "test", "--json")
    key = fg.cli_json("keys", "create", USER_EMAIL, "--json")
    assert isinstance(key.get("key"), str), key
    assert key["key"], key
    fg.key = key["key"]
    return fg


@pytest.fixture(scope="session")
def faregate(faregate_setup: Faregate) -> Iterator[Faregate]:
    """`faregate serve` on a free port, up once /healthz answers 200."""
    fg = faregate_setup
    port = free_port()
    fg.log = fg.data_dir / "faregate-serve.log"
    cmd = [fg.bin, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with fg.log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=fg.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        wait_for_http(
            proc,
            f"http://127.0.0.1:{port}/healthz",
            FAREGATE_START_TIMEOUT_S,
            "faregate serve",
            fg.log,
        )
        fg.base_url = f"http://127.0.0.1:{port}/v1"
        yield fg
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def fg_client(faregate: Faregate) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=faregate.base_url, api_key=faregate.key, max_retries=0, timeout=60)
