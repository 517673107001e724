"""Prometheus metrics (served at /metrics). Defined once here so every layer can count.

Names follow Prometheus conventions: `_total` counters, `_seconds` histograms; money in the
ledger's unit (nano-USD) as counters.

With several worker processes (`faregate serve --workers N`) the server sets
PROMETHEUS_MULTIPROC_DIR before any worker starts: each process then writes its values to
files there, and `render()` in any worker adds up every process's. prometheus_client picks the
mode when it is first imported, so the variable must be set before that (faregate.server)."""

from __future__ import annotations

import glob
import os
import re

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

REQUESTS = Counter("faregate_requests_total", "Requests answered on /v1",
                   ["endpoint", "status"])
REQUEST_SECONDS = Histogram("faregate_request_duration_seconds",
                            "Time from request to the end of the response on /v1",
                            ["endpoint"], buckets=LATENCY_BUCKETS)
FIRST_BYTE_SECONDS = Histogram("faregate_time_to_first_byte_seconds",
                               "Time from request to the response head on /v1",
                               ["endpoint"], buckets=LATENCY_BUCKETS)
UPSTREAM_REQUESTS = Counter("faregate_upstream_requests_total",
                            "Calls to upstreams, by outcome (ok, connect_error, timeout, "
                            "http_5xx, http_429, http_4xx, broken_stream)",
                            ["upstream", "outcome"])
UPSTREAM_SECONDS = Histogram("faregate_upstream_duration_seconds",
                             "Time to an upstream's response head", ["upstream"],
                             buckets=LATENCY_BUCKETS)
FAILOVERS = Counter("faregate_upstream_failovers_total",
                    "Requests moved to the next upstream before the first byte", ["upstream"])
BREAKER_OPEN = Gauge("faregate_upstream_breaker_open",
                     "1 while an upstream's circuit breaker is open (in any live process)",
                     ["upstream"], multiprocess_mode="livemax")
TOKENS = Counter("faregate_tokens_total", "Tokens metered", ["model", "kind"])
REVENUE_NANO = Counter("faregate_charged_nano_usd_total",
                       "Charged to balances for model calls (nano-USD)", ["model"])
SETTLEMENT_BATCH = Histogram("faregate_settlement_batch_size",
                             "Requests per settlement commit (group commit), by how it was "
                             "written (one_statement, transaction, recovered)", ["path"],
                             buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
LEASE_HANDBACK = Counter("faregate_lease_handback_total",
                         "Credit asked of peer processes when a request came up short (asked), "
                         "handed back to a peer that asked (returned), and asked and handed back "
                         "in time (received); PostgreSQL", ["event"])
JOB_RUNS = Counter("faregate_job_runs_total",
                   "Background job runs by this process, by job and outcome (ok, failed)",
                   ["job", "outcome"])
JOB_SECONDS = Histogram("faregate_job_duration_seconds",
                        "Background job run time in this process", ["job"],
                        buckets=(0.005, 0.025, 0.1, 0.5, 2.5, 10, 60, 300))
RATE_LIMITED = Counter("faregate_rate_limited_total", "Requests refused by rate limits",
                       ["limit"])
OPEN_HOLDS = Gauge("faregate_open_holds",
                   "Reservations of requests in flight (summed over live processes)",
                   multiprocess_mode="livesum")
AUTO_RECHARGES = Counter("faregate_auto_recharges_total", "Auto-recharge attempts by outcome",
                         ["outcome"])

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def render() -> bytes:
    """The exposition text: this process's metrics, or every process's in multiprocess mode."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY)
    _forget_dead_processes(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def _forget_dead_processes(path: str) -> None:
    """Drop the live-gauge files of processes that are gone (a worker that crashed and was
    replaced), so that `live*` gauges count only running processes. Counters and histograms
    of dead processes stay: their counts happened."""
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _LIVE_GAUGE_FILE.search(name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, someone else's
