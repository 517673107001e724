"""create_app(): the whole server. /v1 goes straight to the raw gateway app (the hot path);
everything else to Starlette."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from faregate.api.app import create_web
from faregate.api.context import ApiContext
from faregate.api.deps import get_ctx, optional_session
from faregate.catalog.devmodels import ensure_dev_models
from faregate.config import Settings, get_settings
from faregate.dashboard.pages import mount_dashboard
from faregate.db.engine import BACKGROUND_CHECKPOINT_S, checkpoint_sqlite, create_engine, ping
from faregate.db.runner import Database
from faregate.devmodel.app import create_devmodel_app
from faregate.gateway.app import GatewayApp
from faregate.gateway.asgi_io import Message, Receive, Scope, Send
from faregate.gateway.auth import KeyAuthenticator
from faregate.gateway.catalog_cache import CatalogCache
from faregate.gateway.limits import LimitAccounts
from faregate.gateway.metrics_asgi import RequestMetrics
from faregate.gateway.ratelimit import RateLimits, TierCache, limiter_from
from faregate.gateway.readiness import Readiness, metrics_allowed
from faregate.gateway.request_log import RequestLogWriter
from faregate.gateway.state import GatewayState
from faregate.gateway.upstream_watch import UpstreamWatch
from faregate.identity.sessions import SessionUser
from faregate.kit.asgi_guard import NOSNIFF, Guard
from faregate.kit.crypto import Cipher
from faregate.kit.metrics import CONTENT_TYPE, OPEN_HOLDS, render
from faregate.ledger.leasing import CreditManager
from faregate.notify.from_settings import email_sender
from faregate.payments.factory import processor_from
from faregate.payments.sandbox.asgi import sandbox_router
from faregate.phone.sms import SmsSender, sms_sender_from
from faregate.upstream.client import create_session
from faregate.upstream.stats import UpstreamBoard
from faregate.usage.request_logs import sealer_for
from faregate.worker.jobs import run_jobs
from faregate.worker.registry import all_jobs

log = logging.getLogger("faregate")

def builtin_base_url(settings: Settings) -> str:
    host = settings.host
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - we only read it
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/_dev/v1"


async def _signed_in(request: Request) -> SessionUser | None:
    """Who is signed in, for the dashboard's pages (the /api session cookie)."""
    return await optional_session(request, get_ctx(request))


def _nosniff(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """/v1's responses get the security headers that matter for an API, nosniff and HSTS
    when configured (kept lean: the relay's other headers are its own)."""
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)
    return sending


async def _every(interval_s: float, fn: Any, what: str) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await fn()
        except Exception:
            log.warning("%s failed", what, exc_info=True)


class FaregateApp:
    """The ASGI entry point. Owns the process-wide state through the lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state: GatewayState | None = None
        self.gateway: RequestMetrics | None = None  # the /v1 app, wrapped to count requests
        self.readiness = Readiness()
        self.devmodel = create_devmodel_app(settings.dev_model_token_latency_ms)
        pages = APIRouter(include_in_schema=False)
        pages.add_api_route("/healthz", self.healthz, methods=["GET"])
        pages.add_api_route("/readyz", self.readyz, methods=["GET"])
        pages.add_api_route("/metrics", self.metrics, methods=["GET"])
        self.web = create_web(self.lifespan, [pages])
        mount_dashboard(self.web, settings, _signed_in)  # the web pages, "/" included
        self.web.state.sandbox_mounted = False
        self.guarded_web = Guard(self.web, max_body_bytes=settings.max_api_body_bytes,
                                 hsts_max_age_s=settings.hsts_max_age_s)
        self.v1_headers = [NOSNIFF, *self.guarded_web.hsts]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/v1/") and self.gateway is not None:
                await self.gateway(scope, receive, _nosniff(send, self.v1_headers))
                return
            if path.startswith("/_dev/") and self.settings.dev_model:
                await self.devmodel({**scope, "path": path[5:], "raw_path": None},
                                    receive, send)
                return
        await self.guarded_web(scope, receive, send)

    async def healthz(self, request: Request) -> JSONResponse:
        """Liveness: the process is up and started (readiness is /readyz)."""
        if self.state is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> JSONResponse:
        ready, checks = await self.readiness.check(self.state)
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        if not metrics_allowed(request.scope, self.settings):
            return JSONResponse({"error": "metrics are readable from allowed addresses or "
                                          "with FAREGATE_METRICS_TOKEN"}, status_code=403)
        if self.state is not None:
            OPEN_HOLDS.set(self.state.credits.running)
        return Response(render(), media_type=CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        s = self.settings
        engine = create_engine(s.resolved_database_url, background_checkpoints=True)
        ping(engine)
        from faregate.db.migrate import check_schema  # alembic: imported at startup only

        if (warning := check_schema(engine, s.resolved_database_url)) is not None:
            log.warning("%s", warning)
        db = Database(engine, threads=2 if s.is_sqlite else 4)
        cipher = Cipher(s.secret("encryption_key"))
        if s.dev_model:
            await db.run(ensure_dev_models, cipher)
        credits = CreditManager(db, ttl_s=s.lease_ttl_s, max_lease_nano=s.lease_max_nano_usd)
        credits.start()
        catalog = CatalogCache(db, cipher, builtin_base_url(s))
        await catalog.reload()
        session = create_session()
        auth = KeyAuthenticator(db, s.secret("key_pepper"), ttl_s=s.key_cache_ttl_s,
                                failures_per_minute=s.auth_failures_per_minute)
        request_log = RequestLogWriter(db, sealer_for(s.secret("encryption_key")))
        self.state = GatewayState(s, db, credits, session, auth, catalog,
                                  LimitAccounts(db, credits),
                                  tuple(s.trusted_proxies), request_log,
                                  log_all_requests=s.request_log == "all",
                                  upstreams=UpstreamBoard(
                                      threshold=s.upstream_breaker_failures,
                                      cooldown_s=s.upstream_breaker_cooldown_s))
        self.gateway = RequestMetrics(GatewayApp(self.state), access_log=s.access_log)
        tiers = TierCache(db)
        await tiers.reload()
        rates = self.state.rates = RateLimits(limiter_from(s.redis_url), tiers)
        payments = processor_from(s, db)
        if payments.name == "sandbox" and not self.web.state.sandbox_mounted:
            self.web.include_router(
                sandbox_router(db, webhook_secret=s.secret("sandbox_webhook_secret")),
                prefix="/sandbox/v1",
                                    include_in_schema=False)
            self.web.state.sandbox_mounted = True
        mailer = email_sender(s)
        self.web.state.ctx = ApiContext(s, db, mailer, sms_sender(s),
                                        s.secret("session_secret"), s.secret("key_pepper"),
                                        payments)
        tasks = [asyncio.create_task(catalog.run(), name="catalog-reload"),
                 asyncio.create_task(_every(1.0, credits.maintain, "lease maintenance"),
                                     name="lease-maintenance"),
                 asyncio.create_task(_every(5.0, auth.flush_last_used, "key last-used"),
                                     name="key-last-used"),
                 asyncio.create_task(request_log.run(), name="request-log-writer"),
                 asyncio.create_task(tiers.run(), name="usage-tiers-reload")]
        watch = UpstreamWatch(self.state.upstreams, db, catalog, session,
                              flush_s=s.upstream_stats_flush_s,
                              health_interval_s=s.upstream_health_interval_s,
                              health_timeout_s=s.upstream_health_timeout_s)
        tasks += [asyncio.create_task(watch.run_flush(), name="upstream-figures"),
                  asyncio.create_task(watch.run_health(), name="upstream-health")]
        if s.is_sqlite:
            def checkpoint() -> Any:
                return asyncio.to_thread(checkpoint_sqlite, engine)

            tasks.append(asyncio.create_task(
                _every(BACKGROUND_CHECKPOINT_S, checkpoint, "SQLite checkpoint"),
                name="sqlite-checkpoint"))
        if s.run_background_jobs:
            tasks.append(asyncio.create_task(
                run_jobs(db, all_jobs(s, payments, mailer)),
                name="background-jobs"))
        # Everything built so far (modules, routes, schemas, the catalog) lives as long as the
        # process: move it out of the collector's way. A full collection had to walk ~240k
        # objects and paused the event loop for up to ~130 ms (the c=32 p99); frozen, ~25k
        # (bench/README, "Garbage collection pauses").
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await credits.close()  # commit pending settlements, return every lease
            try:  # the figures since the last periodic write
                await watch.flush()
            except Exception:
                log.warning("writing the upstream figures failed", exc_info=True)
            await request_log.close()  # write the request logs still queued
            await rates.limiter.close()
            await auth.flush_last_used()
            await payments.aclose()
            await session.close()
            self.gateway = None
            self.state = None
            db.close()
            gc.unfreeze()  # an app started again in this process (tests) must not pile up


def sms_sender(s: Settings) -> SmsSender:
    return sms_sender_from(
        s.sms_sender, outbox_dir=s.resolved_data_dir / "outbox",
        twilio_account_sid=s.twilio_account_sid,
        twilio_auth_token=s.twilio_auth_token.get_secret_value() if s.twilio_auth_token else None,
        twilio_from=s.twilio_from)


def create_app(settings: Settings | None = None) -> FaregateApp:
    return FaregateApp(settings or get_settings())
