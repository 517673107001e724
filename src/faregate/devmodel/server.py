"""Running the development model standalone with uvicorn."""

from __future__ import annotations

import importlib.util

import uvicorn

from faregate.devmodel.app import create_devmodel_app


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def build_config(host: str, port: int, token_latency_ms: float) -> uvicorn.Config:
    return uvicorn.Config(
        create_devmodel_app(token_latency_ms),
        host=host,
        port=port,
        loop="uvloop" if _have("uvloop") else "asyncio",
        http="httptools" if _have("httptools") else "h11",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


def run(host: str, port: int, token_latency_ms: float) -> None:
    """Serve the development model until interrupted (blocking)."""
    uvicorn.Server(build_config(host, port, token_latency_ms)).run()
