"""Everything the /v1 app holds for the life of the process."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from faregate.config import Settings
from faregate.db.runner import Database
from faregate.gateway.auth import KeyAuthenticator
from faregate.gateway.catalog_cache import CatalogCache
from faregate.gateway.limits import LimitAccounts
from faregate.gateway.ratelimit import RateLimits
from faregate.gateway.request_log import RequestLogWriter
from faregate.ledger.leasing import CreditManager
from faregate.upstream.stats import UpstreamBoard


@dataclass(slots=True)
class GatewayState:
    settings: Settings
    db: Database
    credits: CreditManager
    session: aiohttp.ClientSession
    auth: KeyAuthenticator
    catalog: CatalogCache
    limits: LimitAccounts
    trusted_proxies: tuple[str, ...] = ()
    request_log: RequestLogWriter | None = None
    log_all_requests: bool = False  # FAREGATE_REQUEST_LOG=all
    upstreams: UpstreamBoard = field(default_factory=UpstreamBoard)  # breakers, figures
    rates: RateLimits | None = None  # RPM/TPM by usage tier and key (gateway/ratelimit.py)
