"""Run the server with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import logging.config
import os
import shutil
import tempfile

import uvicorn

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
    try:
        uvicorn.run("faregate.app:create_app", factory=True, host=settings.host,
                    port=settings.port, workers=settings.workers, loop="uvloop",
                    http="faregate.kit.httpproto:LimitedHttpToolsProtocol", lifespan="on",
                    access_log=False, timeout_keep_alive=settings.keep_alive_timeout_s,
                    log_level=settings.log_level, log_config=log_config,
                    timeout_graceful_shutdown=30, proxy_headers=False)
    finally:
        if private_metrics_dir is not None:
            shutil.rmtree(private_metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    from faregate.config import get_settings

    run(get_settings())
