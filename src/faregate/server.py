"""Run the server with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import logging.config
import os
import shutil
import socket
import sys
import tempfile
from typing import Any

import uvicorn
from uvicorn.supervisors import multiprocess

from faregate.config import Settings
from faregate.kit.logjson import logging_config

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when first imported


def metrics_dir(workers: int) -> str | None:
    """With several workers, a directory the workers' metrics go to (see kit/metrics.py):
    the operator's PROMETHEUS_MULTIPROC_DIR, emptied, or a private temporary one. Returns the
    directory to remove on exit."""
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        os.makedirs(configured, exist_ok=True)
        for name in os.listdir(configured):  # values of an earlier run are not ours
            if name.endswith(".db"):
                os.remove(os.path.join(configured, name))
        return None
    if workers <= 1:
        return None
    path = tempfile.mkdtemp(prefix="faregate-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


class ReusePortProcess(multiprocess.Process):
    """A uvicorn worker that listens on a socket of its own, bound with SO_REUSEPORT, instead
    of the one socket uvicorn's supervisor shares among its workers.

    With one shared socket, whichever worker wakes first accepts every connection waiting (an
    event loop accepts until the backlog is empty), so a burst of connections, or a load
    balancer's pool of keep-alive connections, can land almost all on one worker: it does all
    the work while the others idle, and its settlement batches are not shared with theirs. With
    a socket per worker the kernel spreads new connections evenly (by a hash of the
    addresses). Measured in bench/README ("Two workers vs one")."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # pragma: no cover
        super().target([bind(self.config.host, self.config.port, reuse_port=True)])


def bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to host:port, or exit as uvicorn does when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        logging.getLogger("uvicorn.error").error("cannot listen on %s:%d: %s", host, port, exc)
        sys.exit(uvicorn.config.STARTUP_FAILURE)
    return sock


def serve_reuse_port(config: uvicorn.Config) -> None:
    """uvicorn's supervisor (restarts, SIGHUP/TTIN/TTOU) with a listening socket per worker."""
    # Fail now when the address is taken: SO_REUSEPORT would otherwise let the workers share
    # a port with another server of the same user. Port 0 is resolved here.
    with bind(config.host, config.port, reuse_port=False) as probe:
        config.port = int(probe.getsockname()[1])
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d with %d workers, one SO_REUSEPORT socket each",
        config.host, config.port, config.workers)
    multiprocess.Process = ReusePortProcess  # type: ignore[misc]  # what the supervisor spawns
    multiprocess.Multiprocess(config, sockets=[]).run()


def run(settings: Settings) -> None:
    log_config = logging_config(settings.log_level, settings.log_format)
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    private_metrics_dir = metrics_dir(settings.workers)
    # Worker processes build their own Settings from the environment: hand the CLI's choices on.
    os.environ["FAREGATE_HOST"] = settings.host
    os.environ["FAREGATE_PORT"] = str(settings.port)
    os.environ["FAREGATE_DATA_DIR"] = str(settings.resolved_data_dir)
    if settings.database_url:
        os.environ["FAREGATE_DATABASE_URL"] = settings.database_url
    os.environ["FAREGATE_REQUEST_READ_TIMEOUT_S"] = str(settings.request_read_timeout_s)
    os.environ["FAREGATE_MAX_HEADER_BYTES"] = str(settings.max_header_bytes)
    # Generate secrets once, before several workers could race to do it.
    for name in ("session_secret", "key_pepper", "encryption_key"):
        settings.secret(name)
    options: dict[str, Any] = dict(
        factory=True, host=settings.host, port=settings.port, workers=settings.workers,
        loop="uvloop", http="faregate.kit.httpproto:LimitedHttpToolsProtocol", lifespan="on",
        access_log=False, timeout_keep_alive=settings.keep_alive_timeout_s,
        log_level=settings.log_level, log_config=log_config, timeout_graceful_shutdown=30,
        proxy_headers=False)
    try:
        if settings.workers > 1 and settings.reuse_port and hasattr(socket, "SO_REUSEPORT"):
            serve_reuse_port(uvicorn.Config("faregate.app:create_app", **options))
        else:
            uvicorn.run("faregate.app:create_app", **options)
    finally:
        if private_metrics_dir is not None:
            shutil.rmtree(private_metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    from faregate.config import get_settings

    run(get_settings())
