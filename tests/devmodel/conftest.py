"""Fixtures: the development model served by uvicorn on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import openai
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from faregate.devmodel import create_devmodel_app


@contextmanager
def serve_in_thread(app: ASGIApp) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1:<free port> in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", access_log=False, log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def make_client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0, timeout=10)


@pytest.fixture(scope="session")
def devmodel_url() -> Iterator[str]:
    with serve_in_thread(create_devmodel_app()) as url:
        yield url


@pytest.fixture(scope="session")
def client(devmodel_url: str) -> Iterator[openai.OpenAI]:
    with make_client(devmodel_url) as sdk:
        yield sdk


@pytest.fixture(scope="session")
def slow_client() -> Iterator[openai.OpenAI]:
    """A client of a second server whose model sleeps 40 ms per emitted token."""
    app = create_devmodel_app(token_latency_ms=40)
    with serve_in_thread(app) as url, make_client(url) as sdk:
        yield sdk


@pytest.fixture(scope="session")
def mounted_client() -> Iterator[openai.OpenAI]:
    """The model mounted at ``/_dev`` inside a Starlette app, as Faregate mounts it."""
    outer = Starlette(routes=[Mount("/_dev", app=create_devmodel_app())])
    with serve_in_thread(outer) as url, make_client(url + "/_dev") as sdk:
        yield sdk
