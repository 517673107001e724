"""`faregate worker`: the background jobs in a process of their own."""

from __future__ import annotations

import asyncio
import contextlib
import logging.config

from prometheus_client import start_http_server

from faregate.config import Settings
from faregate.db.engine import create_engine
from faregate.db.runner import Database
from faregate.kit.logjson import logging_config
from faregate.notify.from_settings import email_sender
from faregate.payments.factory import processor_from
from faregate.worker.jobs import run_jobs
from faregate.worker.registry import all_jobs


def run_worker(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    if settings.worker_metrics_port:  # the jobs' metrics; a server serves its own at /metrics
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    db = Database(create_engine(settings.resolved_database_url, pool_size=2), threads=2)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            jobs = all_jobs(settings, processor_from(settings, db), email_sender(settings))
            asyncio.run(run_jobs(db, jobs))
    finally:
        db.close()
