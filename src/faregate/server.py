"""Run the server with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import logging
import os

import uvicorn

from faregate.config import Settings


def run(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Worker processes build their own Settings from the environment: hand the CLI's choices on.
    os.environ["FAREGATE_HOST"] = settings.host
    os.environ["FAREGATE_PORT"] = str(settings.port)
    os.environ["FAREGATE_DATA_DIR"] = str(settings.resolved_data_dir)
    if settings.database_url:
        os.environ["FAREGATE_DATABASE_URL"] = settings.database_url
    # Generate secrets once, before several workers could race to do it.
    for name in ("session_secret", "key_pepper", "encryption_key"):
        settings.secret(name)
    uvicorn.run("faregate.app:create_app", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, loop="uvloop", http="httptools", lifespan="on",
                access_log=False, log_level=settings.log_level, timeout_graceful_shutdown=30,
                proxy_headers=False)


if __name__ == "__main__":
    from faregate.config import get_settings

    run(get_settings())
