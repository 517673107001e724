"""Prometheus metrics (served at /metrics). Defined once here so every layer can count.

Names follow Prometheus conventions: `_total` counters, `_seconds` histograms; money in the
ledger's unit (nano-USD) as counters."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
                     "1 while an upstream's circuit breaker is open", ["upstream"])
TOKENS = Counter("faregate_tokens_total", "Tokens metered", ["model", "kind"])
REVENUE_NANO = Counter("faregate_charged_nano_usd_total",
                       "Charged to balances for model calls (nano-USD)", ["model"])
RATE_LIMITED = Counter("faregate_rate_limited_total", "Requests refused by rate limits",
                       ["limit"])
OPEN_HOLDS = Gauge("faregate_open_holds", "Reservations currently held by this process")
AUTO_RECHARGES = Counter("faregate_auto_recharges_total", "Auto-recharge attempts by outcome",
                         ["outcome"])
